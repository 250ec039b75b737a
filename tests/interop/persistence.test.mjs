// Durability with the real binary: SIGKILL and SIGTERM, restart on the same data directory.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, connectClient, rawSocket, waitFor } from './harness.mjs'

// Writes acknowledged before a SIGKILL are all there after a restart.
test('SIGKILL and restart: documents intact', async () => {
  const server = await startServer()
  try {
    const docs = ['persist/a', 'persist/b', 'notes/deep/c']
    const writers = docs.map((d) => connectClient(server.ws, d))
    for (const w of writers) await w.waitSynced()
    writers.forEach((w, i) => { w.doc.getText('t').insert(0, `content ${i}`); w.doc.getMap('m').set('n', i) })
    // Acknowledged: a fresh client sees it (the server only serves what is durable).
    for (const [i, d] of docs.entries()) {
      const check = connectClient(server.ws, d)
      await check.waitSynced()
      await waitFor(() => check.text() === `content ${i}`, 5000, `${d} served`)
      check.destroy()
    }
    for (const w of writers) w.destroy()
    await server.stop('SIGKILL')
    await server.restart()
    for (const [i, d] of docs.entries()) {
      const reader = connectClient(server.ws, d)
      await reader.waitSynced()
      await waitFor(() => reader.text() === `content ${i}` && reader.doc.getMap('m').get('n') === i, 5000, `${d} after restart`)
      reader.destroy()
    }
  } finally { await server.cleanup() }
})

// SIGTERM closes sockets with 1012 (clients reconnect elsewhere) and keeps the data.
test('graceful stop closes with 1012 and keeps data', async () => {
  const server = await startServer()
  try {
    const w = connectClient(server.ws, 'persist/graceful')
    await w.waitSynced()
    w.doc.getText('t').insert(0, 'kept')
    const raw = await rawSocket(server.ws, 'persist/graceful')
    await waitFor(() => raw.messages.length >= 2, 5000, 'raw socket synced')
    w.destroy()
    await server.stop('SIGTERM')
    assert.equal((await raw.waitClosed()).code, 1012)
    assert.equal(server.proc.exitCode, 0, server.stderrTail())
    await server.restart()
    const r = connectClient(server.ws, 'persist/graceful')
    await r.waitSynced()
    await waitFor(() => r.text() === 'kept', 5000, 'data after graceful restart')
    r.destroy()
  } finally { await server.cleanup() }
})
