// The demo's states beyond "connected": a token the server refuses and a document that is not
// there reach their own screens (not "Reconnecting…" forever); a viewer who leaves is gone from
// the others' presence within 5 s and a person with two tabs counts once; deleting asks first;
// offline edits show how many wait to sync.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { serveAndBrowse, startServer, signedIn, together, screenshot, eventually, axeProblems, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

const state = page => page.getByTestId('connection').getAttribute('data-state')
const viewerCount = async page => Number(await page.getByTestId('viewer-count').innerText())

/** An HS256 JWT signed with `secret`. */
function jwt (claims, secret) {
  const b64 = obj => Buffer.from(JSON.stringify(obj)).toString('base64url')
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}

test('a forged token reaches "Access refused", not endless reconnecting', async () => {
  const secured = await startServer(['--jwt-secret', 'the-real-secret-of-this-server'])
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  try {
    const page = await context.newPage()
    await page.goto(secured.url + '/')
    const forged = jwt({ sub: 'mallory', name: 'Mallory', docs: { '**': 'write' }, exp: Math.floor(Date.now() / 1000) + 3600 }, 'a-guessed-secret')
    await page.getByLabel('Display name').fill('Mallory')
    await page.getByLabel('Access token (JWT)').fill(forged)
    await page.getByRole('button', { name: 'Continue' }).click()
    const blocked = page.getByTestId('blocked')
    await blocked.getByRole('heading', { name: 'Access refused' }).waitFor({ timeout: WAIT })
    assert.equal(await state(page), 'refused')
    await blocked.getByRole('button', { name: 'Sign in again' }).waitFor()
    await screenshot(page, 'state-access-refused')
    assert.deepEqual(await axeProblems(page), [])
    // Stays refused: no retry loop takes it back to "Reconnecting…".
    await page.waitForTimeout(1500)
    assert.equal(await state(page), 'refused')
    // A real token for the same page works.
    await blocked.getByRole('button', { name: 'Sign in again' }).click()
    await page.getByLabel('Display name').fill('Ada Lovelace')
    await page.getByLabel('Access token (JWT)').fill(jwt({ sub: 'ada', name: 'Ada Lovelace', docs: { '**': 'write' }, exp: Math.floor(Date.now() / 1000) + 3600 }, 'the-real-secret-of-this-server'))
    await page.getByRole('button', { name: 'Continue' }).click()
    await page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
    assert.equal(await page.getByTestId('blocked').isVisible(), false)
  } finally {
    await context.close()
    await secured.stop()
  }
})

test('an invalid document name, a missing note and someone else\'s private note reach "Not found"', async () => {
  await together(browser, server.url, [['Ada Lovelace', '#4f46e5'], ['Bob Stone', '#e11d48']], async (ada, bob) => {
    const notFound = async (page, what) => {
      await page.getByTestId('blocked').getByRole('heading', { name: 'Not found' }).waitFor({ timeout: WAIT })
      assert.equal(await state(page), 'not-found', what)
      assert.equal(await page.locator('[data-testid=note-editor] .ProseMirror[contenteditable=true]:visible').count(), 0, `${what}: an editable body`)
    }
    // A name the server never serves (a space in it): HTTP 400 at the upgrade.
    await ada.page.goto(`${server.url}/#/issues/${encodeURIComponent('no such issue')}`)
    await notFound(ada.page, 'invalid name')
    await screenshot(ada.page, 'state-not-found')
    assert.deepEqual(await axeProblems(ada.page), [])

    // A well-formed note id that nobody created.
    await ada.page.goto(`${server.url}/#/notes/doesnotexist1`)
    await notFound(ada.page, 'missing note')
    assert.equal(await ada.page.getByLabel('All notes').locator('.item-link').count(), 0, 'the missing note was added to the index')

    // Bob's private note, by its link: Ada's private space has no such note.
    await bob.page.locator('#new-note-private').check()
    await bob.page.getByTestId('new-note').click()
    await bob.page.waitForURL(/#\/private\/notes\/[a-z0-9]+$/)
    await bob.page.getByLabel('Title').fill('Bob\'s secret plans')
    await ada.page.goto(bob.page.url())
    await notFound(ada.page, 'someone else\'s private note')
    // Back to a real screen: the state clears.
    await ada.page.getByTestId('blocked').getByRole('link', { name: 'Back to notes' }).click()
    await ada.page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
    assert.deepEqual(ada.page.errors.filter(e => !/WebSocket|Failed to load resource/.test(e)), [])
  })
})

test('a departed viewer is gone within 5 s (left, offline, window closed), and one person in two tabs counts once', async (t) => {
  await together(browser, server.url, [['Ada Lovelace', '#4f46e5'], ['Bob Stone', '#e11d48']], async (ada, bob) => {
    await ada.page.getByTestId('new-note').click()
    await ada.page.getByLabel('Title').fill('Who is here')
    const url = ada.page.url()
    await bob.page.goto(url)
    await eventually(async () => (await viewerCount(ada.page)) === 2, { message: 'Ada to see Bob' })

    // Bob opens the same note in a second tab: still two people.
    const bobTab = await bob.context.newPage()
    await bobTab.goto(url)
    await bobTab.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
    await eventually(async () => (await bobTab.locator('.avatars .avatar').count()) === 2, { message: 'the second tab to see both' })
    await ada.page.waitForTimeout(500)
    assert.equal(await viewerCount(ada.page), 2, 'Bob counted once')
    assert.equal(await viewerCount(bobTab), 2)
    // The avatar stack: the second overlaps the first by its ring only, and sits below it.
    const stack = await ada.page.locator('.avatars .avatar').evaluateAll(els => els.map(el => {
      const box = el.getBoundingClientRect()
      return { left: box.left, right: box.right, z: Number(getComputedStyle(el).zIndex) }
    }))
    assert.equal(stack.length, 2)
    assert.ok(stack[0].right - stack[1].left <= 6, `overlap ${stack[0].right - stack[1].left} px`)
    assert.ok(stack[0].z > stack[1].z, 'the first avatar above the second')
    // Someone else's avatar (and the caret label once Bob types) stay readable.
    await bobTab.locator('[data-testid=note-editor] .ProseMirror').click()
    await bobTab.keyboard.type('Hello')
    await ada.page.locator('.collaboration-carets__label', { hasText: 'Bob Stone' }).waitFor({ timeout: WAIT })
    assert.deepEqual(await axeProblems(ada.page), [])

    // Bob closes one tab, then leaves the note in the other: gone within 5 s.
    await bobTab.close()
    await bob.page.getByRole('link', { name: 'Contacts' }).click()
    const left = Date.now()
    await eventually(async () => (await viewerCount(ada.page)) === 1, { timeout: 5000, message: 'Bob gone from Ada\'s note' })
    t.diagnostic(`viewer who left gone after ${Date.now() - left} ms`)
    // Bob comes back, then his network vanishes (the browser holds the socket half-open, no
    // close frame reaches the server): the server's presence ping notices.
    await bob.page.goto(url)
    await eventually(async () => (await viewerCount(ada.page)) === 2, { message: 'Bob back' })
    await bob.context.setOffline(true)
    const offlineAt = Date.now()
    await eventually(async () => (await viewerCount(ada.page)) === 1, { timeout: 5000, message: 'Bob gone after going offline' })
    t.diagnostic(`offline viewer gone after ${Date.now() - offlineAt} ms`)
    // Back online, then he closes his window altogether.
    await bob.context.setOffline(false)
    await eventually(async () => (await viewerCount(ada.page)) === 2, { message: 'Bob back online' })
    await bob.context.close()
    await eventually(async () => (await viewerCount(ada.page)) === 1, { timeout: 5000, message: 'Bob gone after closing his window' })
    assert.ok(Date.now() - left < 60_000)
    assert.deepEqual(ada.page.errors, [])
  })
})

test('deleting asks first; a custom field is removed only after confirming', async () => {
  await together(browser, server.url, [['Ada Lovelace', '#4f46e5'], ['Bob Stone', '#e11d48']], async (ada, bob) => {
    // A contact with a custom field, open on both sides.
    await ada.page.getByRole('link', { name: 'Contacts' }).click()
    await ada.page.getByTestId('new-contact').click()
    await ada.page.locator('#field-name').fill('Grace Hopper')
    await ada.page.getByLabel('Add a field').fill('Birthday')
    await ada.page.getByRole('button', { name: 'Add field' }).click()
    await bob.page.goto(ada.page.url())
    await bob.page.getByLabel('Birthday').waitFor({ timeout: WAIT })

    await ada.page.getByRole('button', { name: 'Remove' }).click()
    await ada.page.getByText('Remove “Birthday” for everyone?').waitFor()
    await ada.page.getByRole('button', { name: 'Cancel' }).click()
    await ada.page.waitForTimeout(300)
    assert.equal(await bob.page.getByLabel('Birthday').count(), 1, 'cancel removed the field')
    await ada.page.getByRole('button', { name: 'Remove' }).click()
    await ada.page.getByRole('button', { name: 'Remove field' }).click()
    await eventually(async () => (await bob.page.getByLabel('Birthday').count()) === 0, { message: 'field gone on Bob\'s side' })

    // Deleting the contact: asked, then gone from both lists; Bob's open copy says so.
    await ada.page.getByTestId('delete').click()
    await ada.page.getByText('Delete this contact for everyone?').waitFor()
    await ada.page.getByRole('button', { name: 'Delete contact' }).click()
    await ada.page.waitForURL(/#\/contacts$/)
    await eventually(async () => (await bob.page.getByLabel('All contacts').locator('.item-link', { hasText: 'Grace Hopper' }).count()) === 0, { message: 'gone from Bob\'s list' })
    await bob.page.getByTestId('blocked').getByRole('heading', { name: 'Not found' }).waitFor({ timeout: WAIT })

    // A note and an issue delete the same way.
    await ada.page.getByRole('link', { name: 'Notes' }).click()
    await ada.page.getByTestId('new-note').click()
    await ada.page.getByLabel('Title').fill('Short-lived')
    await ada.page.getByLabel('All notes').locator('.item-link', { hasText: 'Short-lived' }).waitFor()
    await ada.page.getByTestId('delete').click()
    await ada.page.getByRole('button', { name: 'Delete note' }).click()
    await ada.page.waitForURL(/#\/notes$/)
    await eventually(async () => (await ada.page.getByLabel('All notes').locator('.item-link', { hasText: 'Short-lived' }).count()) === 0, { message: 'note gone' })
    await ada.page.getByRole('link', { name: 'Issues' }).click()
    await ada.page.getByTestId('new-issue').click()
    await ada.page.getByLabel('Title').fill('Duplicate')
    await ada.page.getByTestId('delete').click()
    await ada.page.getByRole('button', { name: 'Delete issue' }).click()
    await ada.page.waitForURL(/#\/issues$/)
    await eventually(async () => (await ada.page.locator('.card', { hasText: 'Duplicate' }).count()) === 0, { message: 'issue gone from the board' })
    assert.deepEqual(ada.page.errors, [])
  })
})

test('search narrows the notes list; long titles end in an ellipsis', async () => {
  await together(browser, server.url, [['Ada Lovelace', '#4f46e5']], async (ada) => {
    for (const title of ['Groceries', 'A very long title for a note about the quarterly planning offsite and its agenda']) {
      await ada.page.getByTestId('new-note').click()
      await ada.page.getByLabel('Title').fill(title)
      await ada.page.getByLabel('All notes').locator('.item-link', { hasText: title }).waitFor({ timeout: WAIT })
    }
    const long = ada.page.getByLabel('All notes').locator('.item-text', { hasText: 'quarterly' })
    const { overflow, scroll, client } = await long.evaluate(el => ({ overflow: getComputedStyle(el).textOverflow, scroll: el.scrollWidth, client: el.clientWidth }))
    assert.equal(overflow, 'ellipsis')
    assert.ok(scroll > client, 'the long title is cut')
    await ada.page.getByTestId('search').fill('grocer')
    await eventually(async () => (await ada.page.getByLabel('All notes').locator('.item-link').count()) === 1, { message: 'one match' })
    await ada.page.getByTestId('search').fill('zzz')
    await ada.page.getByText('Nothing matches “zzz”.').waitFor()
  })
})

test('offline edits show how many wait to sync', async () => {
  await together(browser, server.url, [['Ada Lovelace', '#4f46e5']], async (ada) => {
    await ada.page.getByTestId('new-note').click()
    await ada.page.getByLabel('Title').fill('Train notes')
    await ada.page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
    await ada.context.setOffline(true)
    await eventually(async () => (await state(ada.page)) === 'offline', { message: 'offline' })
    const waiting = async () => Number(/(\d+) unsynced/.exec(await ada.page.getByTestId('pending').innerText().catch(() => ''))?.[1] || 0)
    // (The title's index row may be written just after going offline: it counts too.)
    const before = await waiting()
    await ada.page.locator('[data-testid=note-editor] .ProseMirror').click()
    await ada.page.keyboard.type('abc')
    await eventually(async () => (await waiting()) >= before + 3, { message: 'three more changes waiting' })
    await screenshot(ada.page, 'offline-pending')
    await ada.context.setOffline(false)
    await ada.page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: WAIT })
    await eventually(async () => (await ada.page.getByTestId('pending').count()) === 0, { message: 'the count gone once synced' })
  })
})

test('authors show by the directory\'s name in a browser that never saw them online', async () => {
  let url
  await together(browser, server.url, [['Ada Lovelace', '#4f46e5']], async (ada) => {
    await ada.page.getByTestId('new-note').click()
    await ada.page.getByLabel('Title').fill('Written by Ada')
    await ada.page.getByLabel('All notes').locator('.item-link', { hasText: 'Written by Ada' }).waitFor({ timeout: WAIT })
    url = ada.page.url()
  })
  // Ada has gone; Bob's browser has never seen her presence.
  await together(browser, server.url, [['Bob Stone', '#e11d48']], async (bob) => {
    await bob.page.goto(url)
    await bob.page.getByText('Created by Ada Lovelace').waitFor({ timeout: WAIT })
    assert.equal(await bob.page.getByText('ada-lovelace').count(), 0, 'a slug shown')
  })
})
