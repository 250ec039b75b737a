// Makes web-demo/screenshot.png for the README: a desktop window and a phone side by side on the
// same note, each showing the other's caret and avatar. Run from the repo root after `cargo build -p tandem`:
//   node web-demo/e2e/screenshot.mjs
import path from 'node:path'
import { startServer, launchBrowser, signedIn, eventually, bodyText, demoDir } from './harness.mjs'

const server = await startServer()
const browser = await launchBrowser()
try {
  const viewport = { width: 1000, height: 700 }
  const phone = { width: 390, height: 700 }
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#e11d48', { viewport })
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#047857', { viewport: phone })
  await ada.page.getByTestId('new-note').click()
  await ada.page.getByLabel('Title').fill('Offsite agenda')
  const url = ada.page.url()
  await bob.page.goto(url)
  await eventually(async () => (await bob.page.getByLabel('Title').inputValue()) === 'Offsite agenda')

  const adaBody = ada.page.locator('[data-testid=note-editor] .ProseMirror')
  await adaBody.click()
  const kb = ada.page.keyboard
  await kb.press('Control+Alt+2'); await kb.type('Day one'); await kb.press('Enter')
  await kb.press('Control+Shift+8'); await kb.type('Welcome and goals'); await kb.press('Enter')
  await kb.type('Roadmap review'); await kb.press('Enter')
  await kb.type('Team dinner at 7'); await kb.press('Enter'); await kb.press('Enter')
  await kb.type('Bring ideas for the ')
  await kb.press('Control+b'); await kb.type('sync engine'); await kb.press('Control+b')
  await kb.type(' session.')
  await eventually(async () => (await bodyText(bob.page)).includes('session.'))

  // Bob selects "Roadmap review" and comments; Ada's caret sits after "Welcome and goals".
  const line = bob.page.locator('[data-testid=note-editor] li', { hasText: 'Roadmap review' })
  await line.click()
  await bob.page.keyboard.press('End')
  await bob.page.keyboard.type(' (30 min)')
  await bob.page.keyboard.press('Shift+Home')
  await ada.page.locator('[data-testid=note-editor] li', { hasText: 'Welcome and goals' }).click()
  await ada.page.keyboard.press('End')
  await ada.page.getByLabel('Add tag').fill('planning'); await ada.page.getByLabel('Add tag').press('Enter')
  await adaBody.click()
  await ada.page.locator('[data-testid=note-editor] li', { hasText: 'Welcome and goals' }).click()
  await ada.page.keyboard.press('End')
  await bob.page.getByLabel('New reply').fill('Can we move dinner to 7:30?')
  await bob.page.getByRole('button', { name: 'Add reply' }).click()
  await line.click(); await bob.page.keyboard.press('End'); await bob.page.keyboard.press('Shift+Home')
  await ada.page.waitForTimeout(800)

  const shots = await Promise.all([ada.page, bob.page].map(async p => (await p.screenshot()).toString('base64')))
  const page = await browser.newPage({ viewport: { width: viewport.width + phone.width + 120, height: viewport.height + 110 } })
  const frame = (b64, who, width) => `<figure><figcaption><i></i><i></i><i></i><span>${who} — 127.0.0.1:8080</span></figcaption><img style="width:${width}px" src="data:image/png;base64,${b64}"></figure>`
  await page.setContent(`<!doctype html><style>
    body{margin:0;background:linear-gradient(135deg,#e0e7ff,#f0fdfa);display:flex;gap:40px;padding:40px;font:13px system-ui,sans-serif}
    figure{margin:0;border-radius:10px;overflow:hidden;box-shadow:0 20px 50px rgba(30,34,80,.25);background:#fff}
    figcaption{height:30px;display:flex;align-items:center;gap:7px;padding:0 12px;background:#e9ebf1;color:#555}
    i{width:11px;height:11px;border-radius:50%;background:#f87171}i+i{background:#fbbf24}i+i+i{background:#34d399}
    span{margin-left:12px}img{display:block}
    </style>${frame(shots[0], 'Ada', viewport.width)}${frame(shots[1], 'Bob (phone)', phone.width)}`)
  await page.waitForTimeout(200)
  await page.screenshot({ path: path.join(demoDir, 'screenshot.png') })
  console.log('wrote', path.join(demoDir, 'screenshot.png'))
} finally {
  await browser.close()
  await server.stop()
}
