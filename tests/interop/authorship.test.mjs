// Writing as someone else, with stock Yjs clients. A Yjs client ID is only a number; Eve sets her
// document's clientID to Ada's and types at Ada's next clocks while Ada is offline. Before the
// server bound client IDs to authors, it took Eve's text and then dropped Ada's real offline edit
// as already known: Ada saw "hello REAL", everyone else "hello EVIL", for good.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { startServer, connectClient, waitFor, sleep, BIN } from './harness.mjs'

const SECRET = 'interop-authorship-secret'
const mint = (sub) =>
  execFileSync(BIN, ['token', '--sub', sub, '--ttl', '1h', '--doc', 'notes/*=write'], {
    env: { ...process.env, TANDEM_JWT_SECRET: SECRET }
  }).toString().trim()

let server
const clients = []
const denials = []
const warn = console.warn
const connect = (sub, opts = {}) => {
  const c = connectClient(server.ws, 'notes/forged', { params: { token: mint(sub) }, ...opts })
  clients.push(c)
  return c
}

before(async () => {
  server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET } })
  // y-websocket reports a permission-denied message with console.warn.
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

test("nobody can type under another author's client ID", async () => {
  const ada = connect('ada')
  await ada.waitSynced()
  ada.doc.getText('t').insert(0, 'hello')
  const bob = connect('bob')
  await waitFor(() => bob.text() === 'hello', 5000, 'Bob to see hello')

  ada.provider.disconnect()
  ada.doc.getText('t').insert(5, ' REAL') // offline

  const eve = connect('eve')
  await waitFor(() => eve.text() === 'hello', 5000, 'Eve to see hello')
  eve.doc.clientID = ada.doc.clientID
  eve.doc.getText('t').insert(5, ' EVIL')
  await waitFor(() => denials.length === 1, 5000, "the server to refuse Eve's text")
  assert.match(denials[0], /another author/)

  ada.provider.connect()
  await waitFor(() => bob.text() === 'hello REAL', 5000, "Ada's offline edit to reach Bob")
  await sleep(200)
  assert.equal(ada.text(), 'hello REAL')
  assert.equal(bob.text(), 'hello REAL', 'everyone converges on what Ada wrote')
  assert.equal(denials.length, 1)
})
