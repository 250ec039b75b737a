// End-to-end harness: the real `tandem` binary serving the built demo (web-demo/dist), driven by
// Debian's Chromium through playwright-core. Everything listens on 127.0.0.1; every wait is bounded.

import { spawn } from 'node:child_process'
import { before, after } from 'node:test'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = path.dirname(fileURLToPath(import.meta.url))
export const demoDir = path.resolve(here, '..')
export const repoRoot = path.resolve(demoDir, '..')
export const outputDir = path.join(repoRoot, 'test-output')

const TANDEM_BIN = process.env.TANDEM_BIN || path.join(repoRoot, 'target', 'debug', 'tandem')
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium'

/** Bounded waits in the browser (ms). */
export const WAIT = 15_000

/** Starts tandem on a free port with a fresh data dir. Returns { url, stop, stderr }. */
export async function startServer (extraArgs = []) {
  if (!existsSync(TANDEM_BIN)) throw new Error(`no tandem binary at ${TANDEM_BIN}: run \`cargo build -p tandem\` or set TANDEM_BIN`)
  if (!existsSync(path.join(demoDir, 'dist', 'index.html'))) throw new Error('web-demo/dist is missing: run `npm run build` in web-demo')
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-e2e-'))
  const child = spawn(TANDEM_BIN, [
    'serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir, '--static-dir', path.join(demoDir, 'dist'), ...extraArgs
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } })
  let stderr = ''
  child.stderr.on('data', chunk => { stderr = (stderr + chunk).slice(-20_000) })
  const url = await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`tandem did not report its address in 20 s; stderr:\n${stderr}`)), 20_000)
    child.stdout.on('data', chunk => {
      out += chunk
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
      if (m) { clearTimeout(timer); resolve(m[1]) }
    })
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`tandem exited early (${code}); stderr:\n${stderr}`)) })
  })
  child.removeAllListeners('exit')
  const exited = new Promise(resolve => child.once('exit', resolve))
  return {
    url,
    get stderr () { return stderr },
    async stop () {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        const timeout = new Promise(resolve => setTimeout(resolve, 5000, 'timeout'))
        if (await Promise.race([exited, timeout]) === 'timeout') { child.kill('SIGKILL'); await exited }
      }
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}

/**
 * One demo server and one browser for a test file: started before its tests, stopped after them;
 * `use(server, browser)` receives them once started.
 */
export function serveAndBrowse (use) {
  let server, browser
  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
    use(server, browser)
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })
}

export async function launchBrowser () {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`)
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000
  })
}

/**
 * A browser context signed in as `name`: returns { context, page }. Console errors and page
 * errors are collected in `page.errors` for assertions.
 */
export async function signedIn (browser, url, name, color, { viewport = { width: 1280, height: 820 } } = {}) {
  const context = await browser.newContext({ viewport })
  context.setDefaultTimeout(WAIT)
  const page = await context.newPage()
  page.errors = []
  page.on('pageerror', err => page.errors.push(String(err)))
  page.on('console', msg => { if (msg.type() === 'error') page.errors.push(msg.text()) })
  await page.goto(url + '/', { timeout: WAIT })
  await page.getByLabel('Display name').fill(name)
  if (color) await page.locator(`input[name=color][value="${color}"]`).check({ force: true })
  await page.getByRole('button', { name: 'Continue' }).click()
  await page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
  return { context, page }
}

/** Saves a screenshot of `page` as test-output/<name>.png. */
export async function screenshot (page, name) {
  await mkdir(outputDir, { recursive: true })
  await page.screenshot({ path: path.join(outputDir, `${name}.png`) })
}

/** Polls fn() until it returns a truthy value (bounded); returns that value. */
export async function eventually (fn, { timeout = WAIT, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      last = await fn()
      if (last) return last
    } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}; last: ${last}`)
    await new Promise(resolve => setTimeout(resolve, interval))
  }
}

/** Text of a note's body editor, one line per block, without the collaborators' caret labels. */
export function bodyText (page) {
  return page.locator('[data-testid=note-editor] .ProseMirror').evaluate(el => {
    const copy = el.cloneNode(true)
    copy.querySelectorAll('.ProseMirror-widget, .ProseMirror-yjs-cursor, .collaboration-carets__caret').forEach(n => n.remove())
    return Array.from(copy.children, block => block.textContent).join('\n')
  })
}

const require = createRequire(import.meta.url)
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

/**
 * Runs axe-core (injected into the page) over the whole document; returns the serious and
 * critical violations as "rule: target" lines, empty when there are none.
 */
export async function axeProblems (page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ content: AXE_SOURCE })
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] })
    return result.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))
  })
  return violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}: ${v.help}): ${v.targets.join(', ')}`)
}

/** How far the document is wider than the viewport (0 when it fits: no sideways scrolling). */
export function overflowX (page) {
  return page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth)
}

/**
 * Signs in one browser context per [name, color] of `people` (with `options` for signedIn),
 * runs fn(...sessions) and closes the contexts whatever happens.
 */
export async function together (browser, url, people, fn, options) {
  const sessions = []
  try {
    for (const [name, color] of people) sessions.push(await signedIn(browser, url, name, color, options))
    return await fn(...sessions)
  } finally {
    for (const s of sessions) await s.context.close().catch(() => {})
  }
}
