// Starts the real tandem binary and connects stock Yjs clients to it.
// Every wait is bounded; every server and provider is cleaned up by the test that made it.
import { spawn, execFileSync } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = process.env.TANDEM_BIN || join(repo, 'target', 'debug', 'tandem')

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls `predicate` every 20 ms until it holds, failing after `timeoutMs`. */
export async function waitFor (predicate, timeoutMs = 5000, what = 'condition') {
  const start = Date.now()
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

/**
 * Starts `tandem serve` on 127.0.0.1:0 with a fresh (or given) data directory.
 * Returns { addr, http, ws, dataDir, stop(signal), restart(), stderrTail() }. `listen` fixes the
 * address (`freeAddr()`), for a restart that clients find where they left it.
 */
export async function startServer ({ dataDir, args = [], env = {}, listen = '127.0.0.1:0' } = {}) {
  const ownDir = !dataDir
  dataDir = dataDir || mkdtempSync(join(tmpdir(), 'tandem-interop-'))
  const server = { dataDir, args, env, listen, proc: null, stderr: '' }
  await launch(server)
  server.stop = async (signal = 'SIGTERM') => {
    const proc = server.proc
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    let timer
    const exited = new Promise((r) => proc.once('exit', r))
    const limit = new Promise((r) => { timer = setTimeout(r, 15000) })
    proc.kill(signal)
    await Promise.race([exited, limit])
    clearTimeout(timer)
  }
  server.restart = async () => { await launch(server); return server }
  server.stderrTail = () => server.stderr.slice(-4000)
  server.cleanup = async () => {
    await server.stop('SIGKILL')
    if (ownDir) rmSync(dataDir, { recursive: true, force: true })
  }
  return server
}

async function launch (server) {
  const proc = spawn(BIN, ['serve', '--addr', server.listen, '--data-dir', server.dataDir, ...server.args], {
    env: { ...process.env, RUST_LOG: 'info', ...server.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  server.proc = proc
  proc.stderr.on('data', (d) => { server.stderr = (server.stderr + d).slice(-20000) })
  const addr = await new Promise((resolveAddr, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('server did not start in 20 s:\n' + server.stderr)), 20000)
    proc.stdout.on('data', (d) => {
      out += d
      const m = /listening on http:\/\/(\S+)/.exec(out)
      if (m) { clearTimeout(timer); resolveAddr(m[1]) }
    })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}):\n${server.stderr}`)) })
  })
  server.addr = addr
  server.http = `http://${addr}`
  server.ws = `ws://${addr}/sync`
  await waitFor(async () => (await fetch(`${server.http}/health`).catch(() => null))?.ok, 5000, '/health')
}

/** A token for `sub` with `docs` (`pattern=role`), made by the binary's own `tandem token`. */
export const mintToken = (secret, sub, docs, ttl = '1h') =>
  execFileSync(BIN, ['token', '--sub', sub, '--ttl', ttl, ...docs.flatMap((d) => ['--doc', d])], {
    env: { ...process.env, TANDEM_JWT_SECRET: secret }
  }).toString().trim()

/** An HS256 token with arbitrary claims (expired, forged, not yet valid). */
export function signToken (claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`
}

/** A loopback address with a port free at the moment of asking. */
export async function freeAddr () {
  const { createServer } = await import('node:net')
  const probe = createServer()
  await new Promise((r) => probe.listen(0, '127.0.0.1', r))
  const { port } = probe.address()
  await new Promise((r) => probe.close(r))
  return `127.0.0.1:${port}`
}

/** A stock y-websocket client: a Y.Doc and its provider (BroadcastChannel off, so only the server syncs). */
export function connectClient (wsUrl, docName, { params = {}, doc = new Y.Doc() } = {}) {
  const provider = new WebsocketProvider(wsUrl, docName, doc, {
    WebSocketPolyfill: WebSocket, disableBc: true, params, maxBackoffTime: 500
  })
  const client = {
    doc,
    provider,
    text: (name = 't') => doc.getText(name).toString(),
    waitSynced: (ms = 5000) => waitFor(() => provider.synced, ms, `sync of ${docName}`),
    // The awareness instance runs its own interval; destroy it too, or Node never exits.
    destroy: () => { provider.destroy(); provider.awareness.destroy(); doc.destroy() }
  }
  return client
}

/** A raw websocket for hand-made frames; collects binary messages and the close event. */
export async function rawSocket (wsUrl, docName, { headers } = {}) {
  const ws = new WebSocket(`${wsUrl}/${docName}`, { headers })
  ws.binaryType = 'arraybuffer'
  const sock = { ws, messages: [], closed: null }
  ws.on('message', (data, isBinary) => { if (isBinary) sock.messages.push(new Uint8Array(data)) })
  ws.on('close', (code, reason) => { sock.closed = { code, reason: reason.toString() } })
  await new Promise((resolveOpen, reject) => {
    ws.once('open', resolveOpen)
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
  })
  sock.send = (bytes) => ws.send(bytes)
  sock.waitClosed = async (ms = 5000) => { await waitFor(() => sock.closed, ms, 'close'); return sock.closed }
  return sock
}

/** The HTTP status a refused websocket upgrade gets, or 101 if it was accepted. */
export function upgradeStatus (url) {
  return new Promise((resolveStatus) => {
    const ws = new WebSocket(url)
    ws.once('open', () => { ws.terminate(); resolveStatus(101) })
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolveStatus(res.statusCode) })
    ws.once('error', () => resolveStatus(-1))
  })
}

// y-protocols message builders and readers, one message per frame, as stock clients send them.
export function syncStep1 (stateVector) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, stateVector)
  return encoding.toUint8Array(e)
}
export function syncUpdate (update) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, update)
  return encoding.toUint8Array(e)
}
/** Decodes a frame into { type, step?, payload? }. */
export function readFrame (bytes) {
  const d = decoding.createDecoder(bytes)
  const type = decoding.readVarUint(d)
  if (type === 0) return { type, step: decoding.readVarUint(d), payload: decoding.readVarUint8Array(d) }
  if (type === 1) return { type, payload: decoding.readVarUint8Array(d) }
  return { type }
}

export { Y, WebSocket }

/**
 * Reads a Server-Sent Events stream (`/api/events`, `/api/me/events`) at `url`: `events` fills
 * with `{ event, id, data }` (data parsed as JSON) as they come; `close()` ends it.
 */
export function readEvents (url, headers = {}) {
  const controller = new AbortController()
  const events = []
  const done = (async () => {
    const res = await fetch(url, { headers, signal: controller.signal })
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`)
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true })
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const fields = Object.fromEntries(block.split('\n').filter((l) => l && !l.startsWith(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trimStart()]))
        if (fields.event) events.push({ event: fields.event, id: fields.id, data: JSON.parse(fields.data) })
      }
    }
  })().catch(() => {})
  return { events, close: () => controller.abort(), done }
}
