// How the demo looks and reads: the sign-in swatches carry their colours and show which one is
// picked; on a 390 px phone no screen is wider than the viewport; board cards show priority,
// labels and assignees; Markdown shortcuts format the note body; and axe-core finds no serious
// or critical accessibility violation on any screen, on the desktop or on the phone.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, together, screenshot, eventually, axeProblems, overflowX, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

const PHONE = { width: 390, height: 844 }

/** WCAG contrast of `#rrggbb` against white. */
function contrastOnWhite (hex) {
  const lin = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4 }
  const [r, g, b] = [1, 3, 5].map(at => lin(parseInt(hex.slice(at, at + 2), 16)))
  return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)
}

test('the sign-in swatches have their colours, a visible selection and a focus ring', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  try {
    await page.goto(server.url + '/')
    await page.getByLabel('Display name').fill('Ada Lovelace')
    const swatches = page.locator('.swatch')
    const n = await swatches.count()
    assert.ok(n >= 6, `${n} swatches`)
    // Every colour is readable as small text on white, and white initials on it (WCAG AA 4.5:1).
    for (const value of await swatches.locator('input').evaluateAll(els => els.map(el => el.value))) {
      assert.ok(contrastOnWhite(value) >= 4.5, `${value}: ${contrastOnWhite(value).toFixed(2)}:1`)
    }
    for (let i = 0; i < n; i++) {
      const swatch = swatches.nth(i)
      const value = await swatch.locator('input').getAttribute('value')
      const background = await swatch.locator('.swatch-dot').evaluate(el => getComputedStyle(el).backgroundColor)
      const [r, g, b] = [1, 3, 5].map(at => parseInt(value.slice(at, at + 2), 16))
      assert.equal(background, `rgb(${r}, ${g}, ${b})`, `swatch ${value} renders its colour`)
    }
    // Picking one shows the check mark on it alone, and the preview avatar takes the colour.
    const rose = page.locator('.swatch', { has: page.locator('input[value="#e11d48"]') })
    await rose.locator('input').check({ force: true })
    const checks = await page.locator('.swatch-check').evaluateAll(els => els.map(el => getComputedStyle(el).visibility))
    assert.equal(checks.filter(v => v === 'visible').length, 1)
    assert.equal(await rose.locator('.swatch-check').evaluate(el => getComputedStyle(el).visibility), 'visible')
    assert.equal(await page.locator('.signin-preview .avatar').evaluate(el => getComputedStyle(el).backgroundColor), 'rgb(225, 29, 72)')
    // The keyboard: arrows move the choice; the focused swatch has a ring beyond its colour ring.
    await rose.locator('input').focus()
    await page.keyboard.press('ArrowRight')
    const focused = page.locator('.swatch input:focus-visible + .swatch-dot')
    assert.equal(await focused.count(), 1)
    const shadow = await focused.evaluate(el => getComputedStyle(el).boxShadow)
    assert.match(shadow, /rgba\(79, 70, 229/, 'a focus ring')
    await screenshot(page, 'signin-swatches')
    assert.deepEqual(await axeProblems(page), [])
  } finally {
    await context.close()
  }
})

/** Files an issue with a priority, a label and an assignee; returns its id. */
async function fileIssue (page, title) {
  await page.getByRole('link', { name: 'Issues' }).click()
  await page.getByTestId('new-issue').click()
  await page.waitForURL(/#\/issues\/[a-z0-9]+$/)
  const id = page.url().split('/').pop()
  await page.getByLabel('Title').fill(title)
  await page.getByLabel('Priority').selectOption('urgent')
  await page.getByLabel('Add label').fill('backend')
  await page.getByLabel('Add label').press('Enter')
  await page.getByRole('button', { name: 'Assign me' }).click()
  return id
}

test('board cards show priority, labels and assignees, live in the other context', async () => {
  await together(browser, server.url, [['Ada Lovelace', '#b45309'], ['Bob Stone', '#0f766e']], async (ada, bob) => {
    await bob.page.getByRole('link', { name: 'Issues' }).click()
    const id = await fileIssue(ada.page, 'Export times out on large boards')
    const card = bob.page.locator(`.card[data-id="${id}"]`)
    await card.getByTestId('card-priority').filter({ hasText: 'Urgent' }).waitFor({ timeout: WAIT })
    await card.getByTestId('card-label').filter({ hasText: 'backend' }).waitFor({ timeout: WAIT })
    await eventually(async () => (await card.getByTestId('card-assignees').getAttribute('aria-label')) === 'Assigned to Ada Lovelace',
      { message: 'Ada as the assignee, by name' })
    assert.equal(await card.locator('.avatar').innerText(), 'AL')
    // A search narrows the board to the matching cards.
    await bob.page.getByTestId('search').fill('nothing like this')
    await eventually(async () => (await card.count()) === 0, { message: 'the card filtered out' })
    await bob.page.getByTestId('search').fill('backend')
    await card.waitFor({ timeout: WAIT })
    await bob.page.getByTestId('search').fill('')
    await screenshot(bob.page, 'board-card-details')
    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(bob.page.errors, [])
  })
})

for (const [editor, query] of [['Tiptap', ''], ['ProseMirror', '?notes=y-websocket']]) {
  test(`Markdown shortcuts format the note body (${editor})`, async () => {
    await together(browser, server.url, [['Ada Lovelace', '#4f46e5']], async (ada) => {
      await ada.page.goto(`${server.url}/${query}#/notes`)
      await ada.page.getByTestId('new-note').click()
      await ada.page.getByLabel('Title').fill('Shortcuts')
      assert.equal(await ada.page.getByTestId('note-editor').getAttribute('data-editor'), editor.toLowerCase())
      const body = ada.page.locator('[data-testid=note-editor] .ProseMirror')
      await body.click()
      const kb = ada.page.keyboard
      await kb.type('# Big title'); await kb.press('Enter')
      await kb.type('## Smaller'); await kb.press('Enter')
      await kb.type('- first'); await kb.press('Enter'); await kb.type('second'); await kb.press('Enter'); await kb.press('Enter')
      await kb.type('1. one'); await kb.press('Enter'); await kb.press('Enter')
      await kb.type('> quoted'); await kb.press('Enter'); await kb.press('Enter')
      if (editor === 'Tiptap') await kb.type('some **bold** text')
      await body.locator('h1', { hasText: 'Big title' }).waitFor({ timeout: WAIT })
      await body.locator('h2', { hasText: 'Smaller' }).waitFor()
      assert.equal(await body.locator('ul > li').count(), 2)
      assert.equal(await body.locator('ol > li', { hasText: 'one' }).count(), 1)
      assert.equal(await body.locator('blockquote', { hasText: 'quoted' }).count(), 1)
      if (editor === 'Tiptap') assert.equal(await body.locator('strong').innerText(), 'bold')
      // No literal Markdown left behind.
      assert.ok(!(await body.innerText()).includes('# '), 'the # was consumed')
      assert.deepEqual(ada.page.errors, [])
    })
  })
}

/** Visits every screen (one note, contact and issue made on the way); calls visit(name) on each. */
async function everyScreen (page, visit) {
  await visit('notes-empty')
  await page.getByTestId('new-note').click()
  await page.getByLabel('Title').fill('A note whose title is long enough to need an ellipsis in the sidebar list')
  await page.locator('[data-testid=note-editor] .ProseMirror').click()
  await page.keyboard.type('Body text.')
  await page.getByLabel('New reply').fill('A reply.')
  await page.getByRole('button', { name: 'Add reply' }).click()
  await visit('note')
  await page.getByRole('link', { name: 'Contacts' }).click()
  await visit('contacts-empty')
  await page.getByTestId('new-contact').click()
  await page.locator('#field-name').fill('Grace Hopper')
  await page.getByLabel('Add a field').fill('Birthday')
  await page.getByRole('button', { name: 'Add field' }).click()
  await visit('contact')
  await fileIssue(page, 'A card whose title is long enough to wrap on a phone screen')
  await visit('issue')
  await page.getByRole('link', { name: '← Board' }).click()
  await page.locator('.card').first().waitFor()
  await visit('board')
}

for (const [device, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', PHONE]]) {
  test(`no serious or critical axe violations on any screen (${device})`, async () => {
    const ada = await signedIn(browser, server.url, `Axe ${device}`, '#b45309', { viewport })
    try {
      const found = []
      await everyScreen(ada.page, async name => {
        await ada.page.waitForTimeout(300) // the screen's first render and sync
        for (const problem of await axeProblems(ada.page)) found.push(`${name}: ${problem}`)
      })
      assert.deepEqual(found, [])
    } finally {
      await ada.context.close()
    }
  })
}

test('at 390 px no screen is wider than the viewport', async () => {
  // The sign-in screen first.
  const context = await browser.newContext({ viewport: PHONE })
  const signin = await context.newPage()
  await signin.goto(server.url + '/')
  await signin.getByLabel('Display name').waitFor()
  assert.equal(await overflowX(signin), 0, 'sign-in wider than the phone')
  await screenshot(signin, 'phone-signin')
  await context.close()

  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#0369a1', { viewport: PHONE })
  try {
    const wide = []
    await everyScreen(ada.page, async name => {
      await ada.page.waitForTimeout(200)
      const over = await overflowX(ada.page)
      if (over > 0) wide.push(`${name}: ${over} px too wide`)
      await screenshot(ada.page, `phone-${name}`)
    })
    // The header keeps the connection state, the viewers and Sign out on screen.
    for (const el of ['[data-testid=connection]', '[data-testid=viewer-count]', 'button:has-text("Sign out")']) {
      const box = await ada.page.locator(el).boundingBox()
      assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `${el} on screen`)
    }
    // One column on the board: the cards are as wide as the screen allows.
    const card = await ada.page.locator('.card').first().boundingBox()
    assert.ok(card.width > PHONE.width * 0.8, `card ${card.width} px wide`)
    // And between the phone and the desktop: a tablet, a small laptop window.
    for (const width of [600, 768, 1000]) {
      await ada.page.setViewportSize({ width, height: 800 })
      for (const screen of ['#/issues', '#/notes']) {
        await ada.page.goto(`${server.url}/${screen}`)
        await ada.page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
        const over = await overflowX(ada.page)
        if (over > 0) wide.push(`${screen} at ${width} px: ${over} px too wide`)
      }
    }
    assert.deepEqual(wide, [])
    assert.deepEqual(ada.page.errors, [])
  } finally {
    await ada.context.close()
  }
  // "Ctrl+Enter to send" is for keyboards; a touch phone does not show it.
  const touch = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true })
  try {
    const page = await touch.newPage()
    await page.goto(server.url + '/')
    await page.getByLabel('Display name').fill('Tess Touch')
    await page.getByRole('button', { name: 'Continue' }).click()
    await page.getByTestId('new-note').click()
    await page.getByLabel('New reply').waitFor()
    assert.equal(await page.locator('.hint-keys').isVisible(), false, 'Ctrl+Enter hint on a touch screen')
    assert.equal(await overflowX(page), 0)
  } finally {
    await touch.close()
  }
})
