// Cluster mode: several tandem nodes serving the same documents through a real redis-server
// (Debian's, started here on a free loopback port), driven by stock y-websocket clients.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer, connectClient, waitFor, sleep } from './harness.mjs'

const REDIS = process.env.REDIS_SERVER || '/usr/bin/redis-server'

function freePort () {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

let redis, redisDir, redisUrl
const nodes = []
const clients = []

async function node (args = []) {
  const n = await startServer({ args: ['--redis', redisUrl, ...args] })
  nodes.push(n)
  return n
}
function client (n, doc, opts) {
  const c = connectClient(n.ws, doc, opts)
  clients.push(c)
  return c
}

before(async () => {
  redisDir = mkdtempSync(join(tmpdir(), 'tandem-redis-'))
  const port = await freePort()
  redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
    '--appendfsync', 'always', '--dir', redisDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start:\n' + out)), 10000)
    redis.stdout.on('data', (d) => { out += d; if (/Ready to accept connections/.test(out)) { clearTimeout(timer); resolve() } })
    redis.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${REDIS} (install Debian's redis-server): ${e.message}`)) })
    redis.once('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code}):\n${out}`)) })
  })
  redisUrl = `redis://127.0.0.1:${port}/`
})

after(async () => {
  for (const c of clients) c.destroy()
  for (const n of nodes) await n.cleanup()
  redis?.kill('SIGKILL')
  rmSync(redisDir, { recursive: true, force: true })
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

