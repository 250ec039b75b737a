// Authentication, roles and abuse limits with the real binary and stock clients. Tokens come
// from the binary's own `tandem token` helper, or are signed here when a test needs claims the
// helper does not make (expired, forged).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, connectClient, rawSocket, upgradeStatus, waitFor, sleep, mintToken, signToken } from './harness.mjs'
import * as encoding from 'lib0/encoding'

const SECRET = 'interop-test-secret'
const mint = (sub, docs, ttl = '1h') => mintToken(SECRET, sub, docs, ttl)
/** An HS256 token with arbitrary claims (for expired or forged tokens). */
const sign = (claims, secret = SECRET) => signToken(claims, secret)
const now = () => Math.floor(Date.now() / 1000)

let server
const clients = []
const client = (doc, token, opts = {}) => {
  const c = connectClient(server.ws, doc, { params: { token }, ...opts })
  clients.push(c)
  return c
}

before(async () => {
  server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET }, args: ['--jwt-leeway-s', '0'] })
})
after(async () => {
  for (const c of clients) c.destroy()
  await server.cleanup()
})

// Every refusal happens before the upgrade, as HTTP 401/403 with a JSON body.
test('rejections before the upgrade', async () => {
  const ws = server.ws
  assert.equal(await upgradeStatus(`${ws}/notes/1`), 401, 'missing token')
  assert.equal(await upgradeStatus(`${ws}/notes/1?token=not.a.jwt`), 401, 'malformed')
  const forged = sign({ sub: 'eve', docs: { '**': 'admin' }, exp: now() + 60 }, 'wrong-secret')
  assert.equal(await upgradeStatus(`${ws}/notes/1?token=${forged}`), 401, 'bad signature')
  const expired = sign({ sub: 'ada', docs: { '**': 'write' }, exp: now() - 10 })
  assert.equal(await upgradeStatus(`${ws}/notes/1?token=${expired}`), 401, 'expired')
  const early = sign({ sub: 'ada', docs: { '**': 'write' }, nbf: now() + 600, exp: now() + 3600 })
  assert.equal(await upgradeStatus(`${ws}/notes/1?token=${early}`), 401, 'not yet valid')
  const only1 = mint('ada', ['notes/1=write'])
  assert.equal(await upgradeStatus(`${ws}/notes/2?token=${only1}`), 403, 'notes/1 token on notes/2')
  assert.equal(await upgradeStatus(`${ws}/notes/1?token=${only1}`), 101)
  const everything = mint('alice', ['**=write'])
  assert.equal(await upgradeStatus(`${ws}/private/bob/x?token=${everything}`), 403, "bob's private doc")
  assert.equal(await upgradeStatus(`${ws}/private/alice/x?token=${everything}`), 101)
  const res = await fetch(`${server.http}/sync/notes/1`)
  assert.equal(res.status, 401)
  assert.equal((await res.json()).error.code, 'token_missing')
  // Authorization: Bearer works as well as ?token=.
  const bearer = await rawSocket(server.ws, 'notes/1', { headers: { authorization: `Bearer ${only1}` } })
  bearer.ws.close()
})

// A token without exp would be valid forever: refused with its own code, unless the operator
// opts in for service tokens with --jwt-allow-no-exp.
test('a token without exp is refused unless --jwt-allow-no-exp', async () => {
  const forever = sign({ sub: 'svc', docs: { 'svc/*': 'write' } })
  assert.equal(await upgradeStatus(`${server.ws}/svc/doc?token=${forever}`), 401)
  const res = await fetch(`${server.http}/sync/svc/doc?token=${forever}`)
  assert.equal((await res.json()).error.code, 'token_no_expiry')
  const lenient = await startServer({ env: { TANDEM_JWT_SECRET: SECRET }, args: ['--jwt-allow-no-exp'] })
  try {
    const c = connectClient(lenient.ws, 'svc/doc', { params: { token: forever } })
    await c.waitSynced()
    c.doc.getText('t').insert(0, 'service edit')
    const other = connectClient(lenient.ws, 'svc/doc', { params: { token: forever } })
    await waitFor(() => other.text() === 'service edit', 5000, 'the service token syncs')
    c.destroy(); other.destroy()
  } finally { await lenient.cleanup() }
})

// A read-only client receives everything and may show presence; its edits never reach a
// writer and do not survive a restart.
test('read-only client: edits refused, presence allowed', async () => {
  const writer = client('ro/doc', mint('wendy', ['ro/*=write']))
  const reader = client('ro/doc', mint('rita', ['ro/*=read']))
  await writer.waitSynced(); await reader.waitSynced()
  writer.doc.getText('t').insert(0, 'by writer')
  await waitFor(() => reader.text() === 'by writer', 5000, 'reader receives')
  reader.provider.awareness.setLocalStateField('user', { name: 'Rita' })
  await waitFor(() => writer.provider.awareness.getStates().get(reader.doc.clientID)?.user?.name === 'Rita', 5000, 'reader presence')
  reader.doc.getText('t').insert(0, 'SNEAKY ')
  await sleep(300)
  assert.equal(writer.text(), 'by writer')
  writer.destroy(); reader.destroy()
  await server.stop('SIGTERM')
  await server.restart()
  const after = client('ro/doc', mint('wendy', ['ro/*=write']))
  await after.waitSynced()
  await waitFor(() => after.text() === 'by writer', 5000, 'state after restart')
  assert.ok(!after.text().includes('SNEAKY'))
})

// A socket cannot overwrite or remove another socket's presence.
test('awareness spoofing is dropped', async () => {
  const token = mint('sam', ['spoof/*=write'])
  const victim = client('spoof/doc', token)
  const watcher = client('spoof/doc', token)
  await victim.waitSynced(); await watcher.waitSynced()
  victim.provider.awareness.setLocalStateField('user', { name: 'Victim' })
  const id = victim.doc.clientID
  await waitFor(() => watcher.provider.awareness.getStates().get(id)?.user?.name === 'Victim', 5000, 'victim presence')
  const attacker = await rawSocket(server.ws, `spoof/doc?token=${token}`)
  const awareness = (clock, state) => {
    const inner = encoding.createEncoder()
    encoding.writeVarUint(inner, 1); encoding.writeVarUint(inner, id); encoding.writeVarUint(inner, clock)
    encoding.writeVarString(inner, JSON.stringify(state))
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
    return encoding.toUint8Array(e)
  }
  attacker.send(awareness(1000, { user: { name: 'Mallory' } }))
  attacker.send(awareness(1001, null))
  await sleep(400)
  assert.equal(watcher.provider.awareness.getStates().get(id)?.user?.name, 'Victim')
  attacker.ws.close()
  victim.destroy(); watcher.destroy()
})

// A token that expires mid-session closes the socket with 4401; a fresh token reconnects.
test('token expiry closes the socket; a fresh token reconnects', async () => {
  const short = sign({ sub: 'tim', docs: { 'exp/*': 'write' }, exp: now() + 2 })
  const raw = await rawSocket(server.ws, `exp/doc?token=${short}`)
  assert.equal((await raw.waitClosed(8000)).code, 4401)
  const fresh = client('exp/doc', mint('tim', ['exp/*=write']))
  await fresh.waitSynced()
  fresh.destroy()
})

// A flooding socket is closed by the rate limit; a well-behaved client in the room keeps syncing.
test('rate limit closes the flooder, not its neighbours', async () => {
  const limited = await startServer({
    env: { TANDEM_JWT_SECRET: SECRET },
    args: ['--messages-per-sec-per-conn', '20', '--messages-burst-per-conn', '50']
  })
  try {
    const token = mint('fred', ['flood/*=write'])
    const a = connectClient(limited.ws, 'flood/doc', { params: { token } })
    const b = connectClient(limited.ws, 'flood/doc', { params: { token } })
    await a.waitSynced(); await b.waitSynced()
    const flooder = await rawSocket(limited.ws, `flood/doc?token=${token}`)
    for (let i = 0; i < 200 && !flooder.closed; i++) flooder.send(Uint8Array.of(3))
    assert.equal((await flooder.waitClosed()).code, 4429)
    a.doc.getText('t').insert(0, 'still syncing')
    await waitFor(() => b.text() === 'still syncing', 5000, 'neighbour syncs')
    a.destroy(); b.destroy()
  } finally { await limited.cleanup() }
})
