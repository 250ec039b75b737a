// The people layer with stock clients: an edit typed in a y-websocket client notifies the person
// it assigns (live on /api/me/events), an edit acknowledged over HTTP sync keeps its notification
// through `kill -9`, and who-is-online lists the authenticated people behind the sockets, not the
// names their awareness claims.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { startServer, connectClient, waitFor, sleep, syncStep1, syncUpdate, readEvents, BIN, Y } from './harness.mjs'
import { pageSocket, openDocument } from './hocuspocus.mjs'

const SECRET = 'interop-people-secret'
const mint = (sub, name) =>
  execFileSync(BIN, ['token', '--sub', sub, ...(name ? ['--name', name] : []), '--ttl', '1h',
    '--doc', 'issues/*=write', '--doc', 'notes/*=write'], {
    env: { ...process.env, TANDEM_JWT_SECRET: SECRET }
  }).toString().trim()

let server
const clients = []
const connect = (doc, sub, name) => {
  const c = connectClient(server.ws, doc, { params: { token: mint(sub, name) } })
  clients.push(c)
  return c
}
const api = async (path, sub, init = {}) => {
  const res = await fetch(`${server.http}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${mint(sub)}`, ...(init.headers || {}) }
  })
  assert.equal(res.status, 200, `${path}: ${res.status}`)
  return res.json()
}

before(async () => { server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET } }) })
after(async () => {
  for (const c of clients) c.destroy()
  await server.cleanup()
})

/** `sub`'s notification stream: `events` holds each `notification`'s data, in order. */
function notificationStream (sub) {
  const stream = readEvents(`${server.http}/api/me/events`, { authorization: `Bearer ${mint(sub)}` })
  return {
    get events () { return stream.events.filter((e) => e.event === 'notification').map((e) => e.data) },
    close: () => { stream.close(); return stream.done }
  }
}

test('a stock client assigning someone notifies them live, within a second', async () => {
  const stream = notificationStream('bob')
  await sleep(300)
  const ada = connect('issues/1', 'ada', 'Ada Lovelace')
  await ada.waitSynced()
  const sent = Date.now()
  ada.doc.transact(() => {
    ada.doc.getText('title').insert(0, 'Crash on save')
    ada.doc.getMap('meta').set('status', 'open')
    ada.doc.getArray('assignees').push(['bob'])
  })
  await waitFor(() => stream.events.length === 1, 5000, "Bob's notification")
  const took = Date.now() - sent
  assert.ok(took < 1000, `took ${took} ms`)
  const [n] = stream.events
  assert.equal(n.kind, 'assigned')
  assert.equal(n.by, 'ada')
  assert.equal(n.text, 'Ada Lovelace assigned you to “Crash on save”')
  await stream.close()
  const mine = await api('/api/me/notifications', 'ada')
  assert.deepEqual(mine.notifications, [], 'never the actor')
})

test('a notification survives kill -9 right after its change is acknowledged', async () => {
  // A phone's offline edit over HTTP sync: the 200 means it is durable.
  const phone = new Y.Doc()
  phone.transact(() => {
    phone.getText('title').insert(0, 'Flaky test')
    phone.getArray('assignees').push(['carol'])
  })
  const update = Y.encodeStateAsUpdate(phone)
  const body = new Uint8Array([...syncStep1(new Uint8Array([0])), ...syncUpdate(update)])
  const res = await fetch(`${server.http}/api/docs/issues/2/sync`, {
    method: 'POST',
    headers: { authorization: `Bearer ${mint('ada')}`, 'content-type': 'application/octet-stream' },
    body
  })
  assert.equal(res.status, 200)
  await server.stop('SIGKILL')
  await server.restart()
  const inbox = await api('/api/me/notifications', 'carol')
  assert.deepEqual(inbox.notifications.map((n) => [n.kind, n.doc]), [['assigned', 'issues/2']])
})

test('who is online: authenticated people, one entry per person, gone when they leave', async () => {
  const tab1 = connect('notes/plan', 'ada', 'Ada Lovelace')
  const tab2 = connect('notes/plan', 'ada', 'Ada Lovelace')
  const bob = connect('notes/plan', 'bob')
  for (const c of [tab1, tab2, bob]) await c.waitSynced()
  // Bob's awareness claims to be Ada: presence goes by the token.
  bob.provider.awareness.setLocalStateField('user', { name: 'Ada Lovelace', color: '#f00' })
  tab1.provider.awareness.setLocalStateField('user', { name: 'Ada', color: '#0f0' })
  const here = await api('/api/docs/notes/plan/presence', 'bob')
  assert.equal(here.connections, 3)
  assert.deepEqual(here.users.map((u) => [u.sub, u.name, u.connections]),
    [['ada', 'Ada Lovelace', 2], ['bob', 'bob', 1]])
  tab1.destroy()
  tab2.destroy()
  const left = Date.now()
  await waitFor(async () => (await api('/api/docs/notes/plan/presence', 'bob')).users.length === 1, 2000, 'Ada to leave')
  assert.ok(Date.now() - left < 2000)
})

test('who is online counts a Hocuspocus page too, per document on its one socket', async () => {
  const socket = pageSocket(server)
  const plan = openDocument(socket, 'notes/multi-a', { token: mint('cy', 'Cy Young'), user: 'not Cy' })
  const other = openDocument(socket, 'notes/multi-b', { token: mint('cy', 'Cy Young'), user: 'not Cy' })
  try {
    await plan.settled(); await other.settled()
    for (const doc of ['notes/multi-a', 'notes/multi-b']) {
      const here = await api(`/api/docs/${doc}/presence`, 'bob')
      assert.deepEqual(here.users.map((u) => [u.sub, u.name, u.connections]), [['cy', 'Cy Young', 1]])
    }
    plan.destroy() // closes one document; the socket stays
    await waitFor(async () => (await api('/api/docs/notes/multi-a/presence', 'bob')).users.length === 0, 2000, 'Cy to leave notes/multi-a')
    assert.equal((await api('/api/docs/notes/multi-b/presence', 'bob')).users.length, 1, 'still on notes/multi-b')
  } finally {
    for (const t of [plan, other, socket]) { try { t.destroy() } catch {} }
  }
})
