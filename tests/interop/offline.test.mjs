// Offline-first clients: one-round-trip HTTP sync with real `yjs` documents, the offline
// demonstration client, and durability across a SIGKILL between two syncs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, connectClient, waitFor, Y, BIN } from './harness.mjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const here = dirname(fileURLToPath(import.meta.url))

/** One HTTP sync of a Y.Doc: sends its SV and its edits since `since`, applies the answer. */
async function httpSync (server, name, doc, since = new Uint8Array([0]), token) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, Y.encodeStateVector(doc))
  encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(doc, since))
  const headers = { 'content-type': 'application/octet-stream' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(`${server.http}/api/docs/${name}/sync`, { method: 'POST', headers, body: encoding.toUint8Array(e) })
  assert.equal(res.status, 200, await res.clone().text())
  const body = new Uint8Array(await res.arrayBuffer())
  const d = decoding.createDecoder(body)
  let serverSv = null; let denied = false
  while (decoding.hasContent(d)) {
    const type = decoding.readVarUint(d)
    if (type === 2) { decoding.readVarUint(d); decoding.readVarString(d); denied = true; continue }
    const step = decoding.readVarUint(d); const payload = decoding.readVarUint8Array(d)
    if (step === 1) Y.applyUpdate(doc, payload)
    if (step === 0) serverSv = payload
  }
  return { serverSv, denied, bytes: body.length, refused: res.headers.get('x-tandem-refused-updates') }
}

// Two clients edit offline while a third edits online over a socket; the two sync by HTTP;
// all three converge with every edit.
test('two offline HTTP clients and one socket client converge', async () => {
  const server = await startServer()
  try {
    const online = connectClient(server.ws, 'offline/doc')
    await online.waitSynced()
    online.doc.getText('t').insert(0, 'online ')
    const a = new Y.Doc(); a.getText('t').insert(0, 'phone-a ')
    const b = new Y.Doc(); b.getText('t').insert(0, 'phone-b ')
    await httpSync(server, 'offline/doc', a)
    await waitFor(() => online.text().includes('phone-a'), 5000, 'socket client sees a live')
    await httpSync(server, 'offline/doc', b)
    await httpSync(server, 'offline/doc', a, Y.encodeStateVector(a))
    await waitFor(() => online.text().includes('phone-b'), 5000, 'socket client sees b')
    assert.equal(a.getText('t').toString(), online.text())
    await httpSync(server, 'offline/doc', b, Y.encodeStateVector(b))
    for (const doc of [a, b]) assert.equal(doc.getText('t').toString(), online.text())
    for (const part of ['online ', 'phone-a ', 'phone-b ']) assert.ok(online.text().includes(part))
    online.destroy()
  } finally { await server.cleanup() }
})

// A read-only token gets the data, but its edits are refused and reported.
test('read-only HTTP sync returns data, refuses edits', async () => {
  const secret = 'offline-secret'
  const server = await startServer({ env: { TANDEM_JWT_SECRET: secret } })
  const mint = (sub, doc) => execFileSync(BIN, ['token', '--sub', sub, '--doc', doc], { env: { ...process.env, TANDEM_JWT_SECRET: secret } }).toString().trim()
  try {
    const writer = new Y.Doc(); writer.getText('t').insert(0, 'official')
    await httpSync(server, 'ro/doc', writer, undefined, mint('w', 'ro/doc=write'))
    const reader = new Y.Doc(); reader.getText('t').insert(0, 'unofficial ')
    const r = await httpSync(server, 'ro/doc', reader, undefined, mint('r', 'ro/doc=read'))
    assert.ok(r.denied); assert.equal(r.refused, '1')
    assert.ok(reader.getText('t').toString().includes('official'))
    const check = new Y.Doc()
    await httpSync(server, 'ro/doc', check, undefined, mint('w', 'ro/doc=write'))
    assert.equal(check.getText('t').toString(), 'official')
  } finally { await server.cleanup() }
})

// The server is SIGKILLed between two syncs; everything the first sync acknowledged is there.
test('SIGKILL between two syncs loses nothing acknowledged', async () => {
  const server = await startServer()
  try {
    const phone = new Y.Doc()
    phone.getText('t').insert(0, 'before the crash. ')
    const first = await httpSync(server, 'crash/doc', phone)
    await server.stop('SIGKILL')
    phone.getText('t').insert(phone.getText('t').length, 'after the crash.')
    await server.restart()
    await httpSync(server, 'crash/doc', phone, first.serverSv)
    const other = new Y.Doc()
    await httpSync(server, 'crash/doc', other)
    assert.equal(other.getText('t').toString(), 'before the crash. after the crash.')
  } finally { await server.cleanup() }
})

// A client missing 1% of a large document receives about 1%, not the whole document.
test('a reconnecting client missing 1% gets a small diff', async () => {
  const server = await startServer()
  try {
    const writer = new Y.Doc()
    const text = writer.getText('t')
    let clientSv
    for (let i = 0; i < 100; i++) {
      text.insert(text.length, String(i).padStart(1000, '.'))
      if (i === 98) clientSv = Y.encodeStateVector(writer)
    }
    await httpSync(server, 'big/doc', writer)
    const full = Y.encodeStateAsUpdate(writer).length
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, clientSv)
    const res = await fetch(`${server.http}/api/docs/big/doc/sync`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: encoding.toUint8Array(e) })
    const bytes = (await res.arrayBuffer()).byteLength
    console.log(`# document ${full} bytes; reply to a client missing 1%: ${bytes} bytes`)
    assert.ok(bytes < full / 50, `${bytes} bytes for a ${full}-byte document`)
  } finally { await server.cleanup() }
})

// The demonstration client edits with the server down, then syncs with one HTTP call.
test('offline demonstration client', async () => {
  const server = await startServer()
  const state = join(mkdtempSync(join(tmpdir(), 'tandem-phone-')), 'phone.bin')
  const cli = (...args) => execFileSync(process.execPath, [join(here, '..', 'offline-client', 'offline-client.mjs'), ...args]).toString()
  try {
    const watcher = connectClient(server.ws, 'notes/plane')
    await watcher.waitSynced()
    await server.stop('SIGTERM')
    cli('edit', '--state', state, '--text', 'written on a plane. ')
    cli('edit', '--state', state, '--text', 'still offline.')
    await server.restart()
    const out = cli('sync', '--state', state, '--server', server.http, '--doc', 'notes/plane')
    assert.match(out, /synced in one request/)
    const check = connectClient(server.ws, 'notes/plane')
    await check.waitSynced()
    await waitFor(() => check.text() === 'written on a plane. still offline.', 5000, 'edits on the server')
    watcher.destroy(); check.destroy()
  } finally { await server.cleanup() }
})
