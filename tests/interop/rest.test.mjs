// The typed REST API and the change feed, against stock y-websocket clients: a REST edit reaches a
// connected editor, an editor's edit produces the typed SSE event, and the feed only carries
// events of documents the subscriber may read.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { startServer, connectClient, waitFor, readEvents, BIN } from './harness.mjs'

const SECRET = 'rest-test-secret'
const mint = (sub, docs) =>
  execFileSync(BIN, ['token', '--sub', sub, '--ttl', '1h', ...docs.flatMap((d) => ['--doc', d])], {
    env: { ...process.env, TANDEM_JWT_SECRET: SECRET }
  }).toString().trim()

let server
const clients = []
const streams = []
before(async () => {
  server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET } })
})
after(async () => {
  for (const c of clients) c.destroy()
  for (const s of streams) s.close()
  await server.cleanup()
})

async function api (method, path, token, body) {
  const res = await fetch(server.http + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() }
}

/** Reads `/api/events` as a stream of parsed events. */
function subscribe (token, query = '', headers = {}) {
  const s = readEvents(`${server.http}/api/events${query}`, { authorization: `Bearer ${token}`, ...headers })
  streams.push(s)
  return s
}

test('a REST edit reaches a connected y-websocket editor within a second', async () => {
  const token = mint('ada', ['notes/*=write'])
  const created = await api('POST', '/api/notes', token, { id: 'rest1', title: 'Agenda', tags: ['plan'] })
  assert.equal(created.status, 201, JSON.stringify(created.body))
  assert.equal(created.body.author, 'ada')
  const editor = connectClient(server.ws, 'notes/rest1', { params: { token } })
  clients.push(editor)
  await editor.waitSynced()
  assert.equal(editor.text('title'), 'Agenda')
  // The editor types at the start of the title while REST changes its end: both survive.
  editor.doc.getText('title').insert(0, 'Team ')
  await waitFor(async () => (await api('GET', '/api/notes/rest1', token)).body.title === 'Team Agenda', 2000, 'editor edit visible over REST')
  const t0 = Date.now()
  const patched = await api('PATCH', '/api/notes/rest1', token, { title: 'Team Agenda v2' })
  assert.equal(patched.status, 200)
  await waitFor(() => editor.text('title') === 'Team Agenda v2', 1000, 'REST patch in the editor')
  assert.ok(Date.now() - t0 < 1000)
  const reply = await api('POST', '/api/notes/rest1/replies', token, { text: 'Looks good' })
  assert.equal(reply.status, 201)
  await waitFor(() => editor.doc.getArray('replies').length === 1, 1000, 'reply in the editor')
  assert.equal(editor.doc.getArray('replies').get(0).get('text').toString(), 'Looks good')
})

test('an edit over the websocket produces the typed SSE event', async () => {
  const token = mint('bob', ['issues/*=write'])
  const feed = subscribe(token, '?kind=issue')
  await api('POST', '/api/issues', token, { id: 'sse1', title: 'Crash on save' })
  const editor = connectClient(server.ws, 'issues/sse1', { params: { token } })
  clients.push(editor)
  await editor.waitSynced()
  editor.doc.getMap('meta').set('status', 'in_progress')
  editor.doc.getText('description').insert(0, 'Steps: open, save.')
  await waitFor(() => feed.events.some((e) => e.event === 'issue.status_changed'), 3000, 'status event')
  const status = feed.events.find((e) => e.event === 'issue.status_changed')
  assert.deepEqual([status.data.from, status.data.to, status.data.doc, status.data.by], ['open', 'in_progress', 'issues/sse1', ['bob']])
  await waitFor(() => feed.events.some((e) => e.event === 'issue.updated' && e.data.fields.includes('description')), 3000, 'description event')
  assert.equal(feed.events[0].event, 'issue.created')
  // Resuming after the first event replays the rest, in order.
  const again = subscribe(token, '?kind=issue', { 'last-event-id': feed.events[0].id })
  await waitFor(() => again.events.length >= feed.events.length - 1, 2000, 'replay')
  assert.deepEqual(again.events.map((e) => e.id), feed.events.slice(1).map((e) => e.id))
})

test('the feed carries only events of documents the subscriber may read', async () => {
  const carol = mint('carol', ['notes/*=write', 'contacts/*=write'])
  const dave = mint('dave', ['contacts/*=read'])
  const carolFeed = subscribe(carol)
  const daveFeed = subscribe(dave)
  await api('POST', '/api/notes', carol, { id: 'secret-plan', title: 'Shared with notes readers only' })
  const priv = await api('POST', '/api/private/notes', carol, { id: 'diary', title: 'Mine' })
  assert.equal(priv.status, 201)
  assert.equal(priv.body.doc, 'private/carol/notes/diary')
  await api('POST', '/api/contacts', carol, { id: 'ada', name: 'Ada Lovelace' })
  await waitFor(() => daveFeed.events.some((e) => e.event === 'contact.created'), 3000, 'contact event for dave')
  await waitFor(() => carolFeed.events.some((e) => e.data.doc === 'private/carol/notes/diary'), 3000, 'private event for its owner')
  assert.ok(carolFeed.events.some((e) => e.data.doc === 'notes/secret-plan'))
  assert.deepEqual(daveFeed.events.map((e) => e.data.doc), ['contacts/ada'])
  // Dave cannot read or write notes over REST either.
  assert.equal((await api('GET', '/api/notes/secret-plan', dave)).status, 403)
  assert.equal((await api('PATCH', '/api/contacts/ada', dave, { name: 'X' })).status, 403)
  const list = await api('GET', '/api/private/notes', dave)
  assert.deepEqual(list.body.items, [])
})

test('invalid input names the field; unknown ids are 404; duplicates 409', async () => {
  const token = mint('erin', ['issues/*=write', 'notes/*=write'])
  const bad = await api('POST', '/api/issues', token, { title: 'x', priority: 'whenever' })
  assert.equal(bad.status, 400)
  assert.equal(bad.body.error.field, 'priority')
  const wrongType = await api('PATCH', '/api/notes/none', token, { tags: 'not a list' })
  assert.equal(wrongType.status, 400)
  assert.equal(wrongType.body.error.field, 'tags')
  assert.equal((await api('PATCH', '/api/notes/none', token, { title: 'x' })).status, 404)
  assert.equal((await api('POST', '/api/issues', token, { id: 'dup', title: 'a' })).status, 201)
  const dup = await api('POST', '/api/issues', token, { id: 'dup', title: 'b' })
  assert.equal(dup.status, 409)
  assert.equal(dup.body.error.code, 'already_exists')
})

test('REST writes keep the index the web demo lists from in step', async () => {
  const token = mint('fay', ['issues/*=write', 'workspace/index=write'])
  const index = connectClient(server.ws, 'workspace/index', { params: { token } })
  clients.push(index)
  await index.waitSynced()
  const row = () => index.doc.getMap('issues').get('idx1')
  assert.equal((await api('POST', '/api/issues', token, { id: 'idx1', title: 'Listed' })).status, 201)
  await waitFor(() => row()?.get('title') === 'Listed' && row().get('status') === 'open', 2000, 'index row')
  await api('PUT', '/api/issues/idx1/status', token, { status: 'done' })
  await waitFor(() => row()?.get('status') === 'done', 2000, 'status in the index')
  // What the board's card shows: priority, assignees, labels.
  assert.equal((await api('PATCH', '/api/issues/idx1', token, { priority: 'urgent', assignees: ['ada'], labels: ['backend'] })).status, 200)
  await waitFor(() => row()?.get('priority') === 'urgent', 2000, 'priority in the index')
  assert.deepEqual(row().get('assignees'), ['ada'])
  assert.deepEqual(row().get('labels'), ['backend'])
  await api('DELETE', '/api/issues/idx1', token)
  await waitFor(() => row() === undefined, 2000, 'row removed')
})
