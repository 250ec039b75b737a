// Two people on the same note: concurrent typing in the rich-text body converges to one text with
// both edits; each sees the other's avatar, the viewer count and a caret in the other's colour.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, screenshot, eventually, bodyText, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

test('two contexts type concurrently in a note body and converge', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#e11d48')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#047857')
  try {
    // Ada creates a note; Bob opens it from the shared list.
    await ada.page.getByTestId('new-note').click()
    await ada.page.getByLabel('Title').fill('Launch plan')
    const noteUrl = ada.page.url()
    assert.match(noteUrl, /#\/notes\/[a-z0-9]+$/)
    const id = noteUrl.split('/').pop()
    await bob.page.locator(`.item-link[data-id="${id}"]`).click()
    await bob.page.waitForURL(`**#/notes/${id}`)
    await eventually(async () => (await bob.page.getByLabel('Title').inputValue()) === 'Launch plan', { message: 'title on Bob\'s side' })

    // Presence: Bob sees Ada's avatar and two viewers.
    await bob.page.locator('[data-testid=presence] .avatar[data-name="Ada Lovelace"]').waitFor({ timeout: WAIT })
    await eventually(async () => (await bob.page.getByTestId('viewer-count').innerText()) === '2', { message: 'viewer count 2' })
    assert.equal(await bob.page.locator('[data-testid=presence] .avatar[data-name="Ada Lovelace"]').innerText(), 'AL')

    // Both type at once.
    const adaBody = ada.page.locator('[data-testid=note-editor] .ProseMirror')
    const bobBody = bob.page.locator('[data-testid=note-editor] .ProseMirror')
    await adaBody.click()
    await bobBody.click()
    const adaWords = 'Ada writes the first paragraph. '
    const bobWords = 'Bob adds his own sentence here. '
    await Promise.all([
      ada.page.keyboard.type(adaWords, { delay: 15 }),
      bob.page.keyboard.type(bobWords, { delay: 15 })
    ])

    const converged = await eventually(async () => {
      const [a, b] = await Promise.all([bodyText(ada.page), bodyText(bob.page)])
      return a === b && a.includes(adaWords.trim()) && b.includes(bobWords.trim()) ? a : null
    }, { message: 'both bodies to hold both edits' })
    assert.ok(converged.includes(adaWords.trim()))
    assert.ok(converged.includes(bobWords.trim()))

    // Ada's caret shows on Bob's side in Ada's colour, labelled with her name.
    const caret = bob.page.locator('.collaboration-carets__caret', { hasText: 'Ada Lovelace' })
    await caret.waitFor({ timeout: WAIT })
    assert.equal(await caret.evaluate(el => getComputedStyle(el).borderLeftColor), 'rgb(225, 29, 72)')

    // A reply from Bob, edited, then seen by Ada.
    await bob.page.getByLabel('New reply').fill('Looks good to me')
    await bob.page.getByRole('button', { name: 'Add reply' }).click()
    await ada.page.locator('.reply-text', { hasText: 'Looks good to me' }).waitFor({ timeout: WAIT })
    await bob.page.getByRole('button', { name: 'Edit reply' }).click()
    await bob.page.getByRole('textbox', { name: 'Edit reply' }).fill('Looks great to me')
    await bob.page.getByRole('button', { name: 'Save' }).click()
    await ada.page.locator('.reply-text', { hasText: 'Looks great to me' }).waitFor({ timeout: WAIT })
    assert.equal(await ada.page.getByRole('button', { name: 'Edit reply' }).count(), 0, 'Ada cannot edit Bob\'s reply')

    // The title reached the shared index.
    await ada.page.locator(`.item-link[data-id="${id}"]`, { hasText: 'Launch plan' }).waitFor({ timeout: WAIT })

    await screenshot(ada.page, 'notes-ada')
    await screenshot(bob.page, 'notes-bob')
    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(bob.page.errors, [])
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})

test('a private note is listed only for its owner, with a lock', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#e11d48')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#047857')
  try {
    await ada.page.getByLabel('Private').check()
    await ada.page.getByTestId('new-note').click()
    await ada.page.waitForURL(/#\/private\/notes\/[a-z0-9]+$/)
    await ada.page.getByLabel('Title').fill('My diary')
    const id = ada.page.url().split('/').pop()
    const row = ada.page.locator(`.item-link[data-id="${id}"]`)
    await row.locator('.lock').waitFor({ timeout: WAIT })
    await row.filter({ hasText: 'My diary' }).waitFor({ timeout: WAIT })
    // Bob's list is fed by the shared index and his own private index: Ada's note is in neither.
    await bob.page.waitForTimeout(1500)
    assert.equal(await bob.page.locator(`.item-link[data-id="${id}"]`).count(), 0)
    await screenshot(ada.page, 'notes-private')
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})
