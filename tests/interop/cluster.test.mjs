// Cluster mode: several tandem nodes serving the same documents through real redis-servers
// (Debian's, started here on free loopback ports), driven by stock y-websocket clients. Every
// case runs twice: on one redis-server (`--redis`) and on a 3-shard Redis Cluster
// (`--redis-cluster`, made with `redis-cli --cluster create`).
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startServer, connectClient, waitFor, sleep, readEvents } from './harness.mjs'

const REDIS = process.env.REDIS_SERVER || '/usr/bin/redis-server'
const REDIS_CLI = process.env.REDIS_CLI || '/usr/bin/redis-cli'
const run = promisify(execFile)

/** A free loopback port whose +10000 (a cluster node's bus port) is free too. */
async function freePort () {
  const listen = (port) => new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(null))
    s.listen(port, '127.0.0.1', () => { const got = s.address().port; s.close(() => resolve(got)) })
  })
  for (;;) {
    const port = await listen(0)
    if (port && port < 55000 && await listen(port + 10000)) return port
  }
}

/**
 * One redis-server, or `shards` of them made into a Redis Cluster; each with its AOF (every write
 * fsynced) in a directory of its own, so `stop` then `start` is an operator's restart.
 */
class TestRedis {
  constructor (cluster) {
    this.cluster = cluster
    this.dir = mkdtempSync(join(tmpdir(), 'tandem-redis-'))
    this.procs = []
    this.ports = []
  }

  async start () {
    const fresh = this.ports.length === 0
    if (fresh) for (let i = 0; i < (this.cluster ? 3 : 1); i++) this.ports.push(await freePort())
    this.procs = await Promise.all(this.ports.map((port) => this.spawnOne(port)))
    if (!this.cluster) return
    if (fresh) {
      await run(REDIS_CLI, ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas', '0', '--cluster-yes'])
    }
    for (const port of this.ports) {
      await waitFor(async () => {
        try { return /cluster_state:ok/.test((await run(REDIS_CLI, ['-p', String(port), 'cluster', 'info'])).stdout) } catch { return false }
      }, 20000, `cluster_state:ok on ${port}`)
    }
  }

  async spawnOne (port) {
    const dir = join(this.dir, String(port))
    mkdirSync(dir, { recursive: true })
    const cluster = this.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`] : []
    const proc = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
      '--appendfsync', 'always', ...cluster, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('redis-server did not start:\n' + out)), 10000)
      proc.stdout.on('data', (d) => { out += d; if (/Ready to accept connections/.test(out)) { clearTimeout(timer); resolve() } })
      proc.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${REDIS} (install Debian's redis-server): ${e.message}`)) })
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code}):\n${out}`)) })
    })
    return proc
  }

  /** Stops every redis-server with `signal` and waits (at most 10 s each) for it to exit. */
  async stop (signal) {
    await Promise.all(this.procs.map(async (proc) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill(signal)
      let timer
      await Promise.race([exited, new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error('redis-server did not exit')), 10000) })])
      clearTimeout(timer)
    }))
  }

  /** The flags that point a tandem node at it. */
  flags () {
    const urls = this.ports.map((p) => `redis://127.0.0.1:${p}/`)
    return this.cluster ? ['--redis-cluster', urls.join(',')] : ['--redis', urls[0]]
  }

  async cleanup () {
    await this.stop('SIGKILL')
    rmSync(this.dir, { recursive: true, force: true })
  }
}

for (const mode of ['one redis-server', 'a 3-shard Redis Cluster']) describe(`on ${mode}`, () => {
const redis = new TestRedis(mode !== 'one redis-server')
const nodes = []
const clients = []

async function node (args = []) {
  const n = await startServer({ args: [...redis.flags(), ...args] })
  nodes.push(n)
  return n
}
function client (n, doc, opts) {
  const c = connectClient(n.ws, doc, opts)
  clients.push(c)
  return c
}

before(async () => {
  await redis.start()
})

after(async () => {
  for (const c of clients) c.destroy()
  for (const n of nodes) await n.cleanup()
  await redis.cleanup()
})

test('clients on different nodes converge on concurrent edits', async () => {
  const a = await node()
  const b = await node()
  const ca = client(a, 'cluster/converge')
  const cb = client(b, 'cluster/converge')
  await ca.waitSynced()
  await cb.waitSynced()
  for (let i = 0; i < 20; i++) {
    ca.doc.getText('t').insert(0, `a${i} `)
    cb.doc.getText('t').insert(0, `b${i} `)
    cb.doc.getMap('m').set(`k${i}`, i)
  }
  await waitFor(() => ca.text() === cb.text() && ca.text().includes('a19 ') && ca.text().includes('b19 '), 5000, 'convergence')
  for (let i = 0; i < 20; i++) {
    assert.ok(ca.text().includes(`a${i} `) && ca.text().includes(`b${i} `))
  }
  await waitFor(() => ca.doc.getMap('m').size === 20, 3000, 'map on node A')
  // A node started later loads the document from Redis alone.
  const late = await node()
  const cl = client(late, 'cluster/converge')
  await cl.waitSynced()
  await waitFor(() => cl.text() === ca.text(), 3000, 'late node has the document')
})

test('presence crosses nodes and leaves with its client', async () => {
  const a = nodes[0]
  const b = nodes[1]
  const ca = client(a, 'cluster/presence')
  const cb = client(b, 'cluster/presence')
  await ca.waitSynced()
  await cb.waitSynced()
  ca.provider.awareness.setLocalStateField('user', { name: 'Ada' })
  const names = (c) => [...c.provider.awareness.getStates().values()].map((s) => s.user?.name).filter(Boolean)
  await waitFor(() => names(cb).includes('Ada'), 3000, 'Ada seen on node B')
  // A client that opens the document later on another node sees who is already there.
  const cc = client(nodes[2], 'cluster/presence')
  await cc.waitSynced()
  await waitFor(() => names(cc).includes('Ada'), 3000, 'Ada seen by a newcomer on node C')
  ca.destroy()
  await waitFor(() => !names(cb).includes('Ada') && !names(cc).includes('Ada'), 5000, 'Ada gone everywhere')
})

test('a killed node loses nothing acknowledged; its clients resync elsewhere; its presence expires', async () => {
  const victim = await node()
  const survivor = nodes[1]
  const writer = client(victim, 'cluster/kill')
  const watcher = client(survivor, 'cluster/kill')
  await writer.waitSynced()
  await watcher.waitSynced()
  // A second client of the victim that never reconnects: its presence must go with the node.
  const ghost = client(victim, 'cluster/kill')
  await ghost.waitSynced()
  ghost.provider.awareness.setLocalStateField('user', { name: 'Doomed' })
  const names = (c) => [...c.provider.awareness.getStates().values()].map((s) => s.user?.name).filter(Boolean)
  await waitFor(() => names(watcher).includes('Doomed'), 3000, 'presence from the victim')
  for (let i = 0; i < 200; i++) writer.doc.getText('t').insert(writer.doc.getText('t').length, `w${i};`)
  // What the watcher on the other node received went through Redis: it was acknowledged.
  await waitFor(() => watcher.text().includes('w199;'), 5000, 'edits reach the survivor')
  const seen = watcher.text()
  await victim.stop('SIGKILL')
  ghost.provider.shouldConnect = false
  // The victim's client reconnects to the survivor with the same document and resyncs.
  writer.provider.destroy()
  const moved = client(survivor, 'cluster/kill', { doc: writer.doc })
  await moved.waitSynced()
  moved.doc.getText('t').insert(0, 'after;')
  await waitFor(() => watcher.text().startsWith('after;'), 3000, 'the moved client edits again')
  assert.ok(watcher.text().includes(seen))
  // Its presence (from a dead node, no close ever came) expires with the node's lease.
  try {
    await waitFor(() => !names(watcher).includes('Doomed'), 12000, 'presence of the dead node removed')
  } catch (e) {
    const metrics = await (await fetch(`${survivor.http}/metrics`)).text()
    throw new Error(`${e.message}\n${metrics.split('\n').filter((l) => l.startsWith('tandem_cluster')).join('\n')}\n${survivor.stderrTail().slice(-1500)}`)
  }
})

test('compaction racing with appends from two nodes loses nothing', async () => {
  const a = await node(['--compact-after-updates', '5'])
  const b = await node(['--compact-after-updates', '5'])
  const ca = client(a, 'cluster/compact')
  const cb = client(b, 'cluster/compact')
  await ca.waitSynced()
  await cb.waitSynced()
  for (let i = 0; i < 150; i++) {
    ca.doc.getText('t').insert(ca.doc.getText('t').length, `a${i};`)
    cb.doc.getText('t').insert(0, `b${i};`)
    if (i % 25 === 0) await sleep(20)
  }
  await waitFor(() => ca.text() === cb.text() && ca.text().includes('a149;') && ca.text().includes('b149;'), 8000, 'convergence under compaction')
  // A fresh node loads snapshot + stream tail from Redis: the same content.
  const fresh = await node()
  const cf = client(fresh, 'cluster/compact')
  await cf.waitSynced()
  await waitFor(() => cf.text() === ca.text(), 3000, 'fresh node loads everything')
  for (let i = 0; i < 150; i++) {
    assert.ok(cf.text().includes(`a${i};`) && cf.text().includes(`b${i};`), `token ${i}`)
  }
  const metrics = await (await fetch(`${a.http}/metrics`)).text()
  const metricsB = await (await fetch(`${b.http}/metrics`)).text()
  assert.match(metrics, /tandem_cluster_remote_updates_total [1-9]/)
  const compactions = (m) => Number(/tandem_compactions_total (\d+)/.exec(m)?.[1] ?? 0)
  assert.ok(compactions(metrics) + compactions(metricsB) > 0, 'compactions ran during the appends')
  const stats = await (await fetch(`${a.http}/api/stats`)).json()
  assert.equal(stats.cluster.node_lease_ok, true)
})


test('every node\'s /api/events carries the whole cluster\'s events, once, in one order, resumable on any node', async () => {
  const a = await node()
  const b = await node()
  const onA = readEvents(`${a.http}/api/events?docs=notes/feed-*`)
  const onB = readEvents(`${b.http}/api/events?docs=notes/feed-*`)
  await sleep(300)
  const post = (n, method, path, body) => fetch(`${n.http}${path}`, {
    method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  // Only node B opens the document (a REST write); node A never does.
  assert.equal((await post(b, 'POST', '/api/notes', { id: 'feed-1', title: 'From B' })).status, 201)
  const created = (s) => s.events.filter((e) => e.event === 'note.created' && e.data.doc === 'notes/feed-1')
  await waitFor(() => created(onA).length === 1 && created(onB).length === 1, 5000, 'note.created on both nodes')
  assert.equal(created(onA)[0].id, created(onB)[0].id, 'one id for one event, on every node')
  // A client on node A misses an edit made on node B while it is away, then resumes on A.
  onA.close()
  const last = created(onA)[0].id
  assert.equal((await post(b, 'PATCH', '/api/notes/feed-1', { title: 'From B, edited' })).status, 200)
  assert.equal((await post(a, 'POST', '/api/notes', { id: 'feed-2', title: 'From A' })).status, 201)
  await waitFor(() => onB.events.length >= 3, 5000, 'both later events on B')
  const resumedA = readEvents(`${a.http}/api/events?docs=notes/feed-*`, { 'last-event-id': last })
  const resumedB = readEvents(`${b.http}/api/events?docs=notes/feed-*`, { 'last-event-id': last })
  try {
    await waitFor(() => resumedA.events.length >= 2 && resumedB.events.length >= 2, 5000, 'resumed streams replay')
    const told = (s) => s.events.map((e) => `${e.id} ${e.event} ${e.data.doc}`)
    assert.deepEqual(told(resumedA), told(onB).slice(1), 'node A replays what it missed, in the order B saw it')
    assert.deepEqual(told(resumedB), told(resumedA), 'the same on every node')
    assert.deepEqual(resumedA.events.map((e) => e.event), ['note.updated', 'note.created'])
    await sleep(300)
    assert.equal(onB.events.length, 3, 'each event once, not again by the node applying it')
  } finally {
    for (const s of [onB, resumedA, resumedB]) s.close()
  }
})

test('a Redis restart: /health recovers by itself, two nodes keep editing, nothing acknowledged is lost', async () => {
  // Two nodes with the default timers, as deployed; stock clients on each.
  const a = await node()
  const b = await node()
  const doc = 'cluster/redis-restart'
  const ca = client(a, doc)
  const cb = client(b, doc)
  await ca.waitSynced()
  await cb.waitSynced()
  const type = (c, prefix, n) => { for (let i = 0; i < n; i++) c.doc.getText('t').insert(c.doc.getText('t').length, `${prefix}${i};`) }
  const has = (text, prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i};`).every((t) => text.includes(t))
  const health = async (n) => (await fetch(`${n.http}/health`)).status

  // Acknowledged before the restart: what each node's client sees of the other's edits came
  // through Redis, so Redis had executed (and, with appendfsync always, fsynced) it.
  type(ca, 'a', 50)
  type(cb, 'b', 50)
  await waitFor(() => has(ca.text(), 'b', 50) && has(cb.text(), 'a', 50), 5000, 'edits cross nodes before the restart')

  // An operator's restart: SIGTERM, then a new redis-server on the same port and AOF. Within
  // the outage grace the nodes hold what their clients send and keep their sockets open.
  let dropped = 0
  for (const c of [ca, cb]) c.provider.on('status', ({ status }) => { if (status === 'disconnected') dropped++ })
  await redis.stop('SIGTERM')
  await waitFor(async () => (await health(a)) === 503 && (await health(b)) === 503, 5000, '/health 503 while Redis is away')
  // Clients keep typing during the outage; nothing of it is acknowledged yet.
  type(ca, 'x', 10)
  type(cb, 'y', 10)
  await sleep(500)
  await redis.start()
  const back = Date.now()
  try {
    await waitFor(async () => (await health(a)) === 200 && (await health(b)) === 200, 10000, '/health 200 again on both nodes')
  } catch (e) {
    const body = await (await fetch(`${a.http}/health`)).text()
    throw new Error(`${e.message}\n${body}\n${a.stderrTail().slice(-1500)}`)
  }
  const recovered = Date.now() - back

  // The clients edit on: what they typed before, during and after the restart converges.
  type(ca, 'c', 50)
  type(cb, 'd', 50)
  const all = (text) => has(text, 'a', 50) && has(text, 'b', 50) && has(text, 'x', 10) && has(text, 'y', 10) &&
    has(text, 'c', 50) && has(text, 'd', 50)
  await waitFor(() => ca.text() === cb.text() && all(ca.text()), 15000, 'convergence after the restart')
  assert.equal(dropped, 0, 'no socket was closed: the held edits were written when Redis came back')

  // Redis alone holds it all: a fresh node loads the same document.
  const fresh = await node()
  const cf = client(fresh, doc)
  await cf.waitSynced()
  await waitFor(() => cf.text() === ca.text(), 5000, 'a fresh node loads everything from Redis')
  assert.ok(all(cf.text()))
  console.log(`/health 200 again ${recovered} ms after redis-server was back`)
})
})
