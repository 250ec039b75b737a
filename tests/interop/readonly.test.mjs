// A read-only user with the stock y-websocket provider: connecting, reconnecting with the whole
// document (and its deletions) in hand, and typing. Only an edit is refused. y-websocket answers
// our SyncStep1 with a SyncStep2 on every connect (empty when fresh, repeating its whole delete
// set when it holds the document); the server used to count that as an edit, so every reader
// was told "permission denied" on connect, and y-websocket logged its URL, token included.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { startServer, connectClient, waitFor, sleep, BIN } from './harness.mjs'

const SECRET = 'interop-readonly-secret'
const mint = (sub, docs) =>
  execFileSync(BIN, ['token', '--sub', sub, '--ttl', '1h', ...docs.flatMap((d) => ['--doc', d])], {
    env: { ...process.env, TANDEM_JWT_SECRET: SECRET }
  }).toString().trim()

let server
const clients = []
// y-websocket reports a permission-denied message with console.warn; count them.
const denials = []
const warn = console.warn
before(async () => {
  server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET } })
  console.warn = (...args) => {
    if (String(args[0]).startsWith('Permission denied')) denials.push(String(args[0]))
    else warn(...args)
  }
})
after(async () => {
  console.warn = warn
  for (const c of clients) c.destroy()
  await server.cleanup()
})

test('a reader is refused only when it edits', async () => {
  const writer = connectClient(server.ws, 'notes/ro', { params: { token: mint('wanda', ['notes/*=write']) } })
  clients.push(writer)
  await writer.waitSynced()
  const text = writer.doc.getText('t')
  text.insert(0, 'hello brave new world')
  text.delete(6, 6) // the document now has deletions, which every SyncStep2 repeats
  writer.provider.awareness.setLocalStateField('user', { name: 'Wanda' })

  const reader = connectClient(server.ws, 'notes/ro', { params: { token: mint('rita', ['notes/*=read']) } })
  clients.push(reader)
  reader.provider.awareness.setLocalStateField('user', { name: 'Rita' })
  await reader.waitSynced()
  await waitFor(() => reader.text() === 'hello new world', 5000, 'the reader to receive the text')
  // Each of the reader's SyncStep2s has been answered by the time a round trip after it comes
  // back; a denial would have arrived first.
  await sleep(300)
  assert.deepEqual(denials, [], 'a fresh reader connecting is not an edit')

  // The connection drops (a Wi-Fi change): the reader comes back holding everything.
  reader.provider.ws.terminate()
  await waitFor(() => reader.provider.wsconnected === false, 5000, 'the drop')
  await waitFor(() => reader.provider.synced && reader.provider.wsconnected, 10000, 'the reconnect')
  text.insert(0, '> ')
  await waitFor(() => reader.text() === '> hello new world', 5000, 'live edits after the reconnect')
  await sleep(300)
  assert.deepEqual(denials, [], 'a reader reconnecting with the document and its deletions is not an edit')

  // Typing is an edit: refused, and never reaches the writer.
  reader.doc.getText('t').insert(0, 'EVIL ')
  await waitFor(() => denials.length === 1, 5000, 'the permission-denied message')
  await sleep(300)
  assert.equal(writer.text(), '> hello new world')
  assert.equal(denials.length, 1)
  // The provider shows the reason: it says the role is read-only, not that access is missing.
  assert.match(denials[0], /read-only: the token's role on this document is read/)
})
