#!/usr/bin/env node
// An offline-first client, as a mobile app would be: it edits a Yjs document with no network,
// keeps the document's state in a local file, and when the server is reachable it syncs in ONE
// HTTP round trip: POST /api/docs/<doc>/sync with its state vector and its unsynced edits.
//
//   node offline-client.mjs edit --state s.bin --text "hello"      (works with the server down)
//   node offline-client.mjs sync --state s.bin --server http://127.0.0.1:8080 --doc notes/1 [--token T]
//   node offline-client.mjs show --state s.bin
//
// The state file holds the Y.Doc update and the server's last state vector, so the next sync
// sends only what the server has not acknowledged.
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    state: { type: 'string' }, text: { type: 'string' }, server: { type: 'string' },
    doc: { type: 'string' }, token: { type: 'string' }
  }
})
const [command] = positionals
if (!values.state) throw new Error('--state FILE is required')

/** Local storage: { doc: Y.Doc, serverSv: Uint8Array } in one file. */
function load () {
  const doc = new Y.Doc()
  let serverSv = new Uint8Array([0])
  if (existsSync(values.state)) {
    const d = decoding.createDecoder(readFileSync(values.state))
    Y.applyUpdate(doc, decoding.readVarUint8Array(d))
    serverSv = decoding.readVarUint8Array(d)
  }
  return { doc, serverSv }
}
function save ({ doc, serverSv }) {
  const e = encoding.createEncoder()
  encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(doc))
  encoding.writeVarUint8Array(e, serverSv)
  writeFileSync(values.state, encoding.toUint8Array(e))
}

const local = load()
if (command === 'edit') {
  const text = local.doc.getText('t')
  text.insert(text.length, values.text ?? '')
  save(local)
  console.log(`edited offline: ${JSON.stringify(text.toString())}`)
} else if (command === 'sync') {
  // The body: our SyncStep1, then one Update with everything the server has not seen.
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0)
  encoding.writeVarUint8Array(e, Y.encodeStateVector(local.doc))
  encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 2)
  encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(local.doc, local.serverSv))
  const body = encoding.toUint8Array(e)
  const headers = { 'content-type': 'application/octet-stream' }
  if (values.token) headers.authorization = `Bearer ${values.token}`
  const res = await fetch(`${values.server}/api/docs/${values.doc}/sync`, { method: 'POST', headers, body })
  if (!res.ok) throw new Error(`sync failed: HTTP ${res.status} ${await res.text()}`)
  // The answer: SyncStep2 (what we lacked), then the server's SyncStep1 (what it now has).
  const d = decoding.createDecoder(new Uint8Array(await res.arrayBuffer()))
  while (decoding.hasContent(d)) {
    const type = decoding.readVarUint(d)
    if (type === 0) {
      const step = decoding.readVarUint(d)
      const payload = decoding.readVarUint8Array(d)
      if (step === 1 || step === 2) Y.applyUpdate(local.doc, payload)
      else if (step === 0) local.serverSv = payload
    } else if (type === 2) {
      decoding.readVarUint(d)
      console.error(`server refused our edits: ${decoding.readVarString(d)}`)
    } else break
  }
  save(local)
  console.log(`synced in one request (${body.length} bytes up): ${JSON.stringify(local.doc.getText('t').toString())}`)
} else if (command === 'show') {
  console.log(local.doc.getText('t').toString())
} else {
  throw new Error('usage: offline-client.mjs edit|sync|show --state FILE ...')
}
