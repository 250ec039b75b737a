// Contact fields are Y.Texts bound to inputs: typing in one context shows "… is typing…" next to
// that field in the other (from awareness), the text arrives there, and the mark clears by itself.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, screenshot, eventually, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

test('typing in a contact field shows the typing indicator in the other context', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#7c3aed')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#0369a1')
  try {
    await ada.page.getByRole('link', { name: 'Contacts' }).click()
    await ada.page.getByTestId('new-contact').click()
    await ada.page.waitForURL(/#\/contacts\/[a-z0-9]+$/)
    const id = ada.page.url().split('/').pop()
    await ada.page.getByLabel('Name', { exact: true }).fill('Grace Hopper')

    await bob.page.getByRole('link', { name: 'Contacts' }).click()
    await bob.page.locator(`.item-link[data-id="${id}"]`, { hasText: 'Grace Hopper' }).click()
    await eventually(async () => (await bob.page.getByLabel('Name', { exact: true }).inputValue()) === 'Grace Hopper', { message: 'name on Bob\'s side' })

    // Ada types in Email; Bob sees who is typing where, and the text itself.
    const email = ada.page.getByLabel('Email')
    await email.click()
    await ada.page.keyboard.type('grace@navy.mil', { delay: 40 })
    const indicator = bob.page.locator('[data-typing-for=email]')
    await eventually(async () => (await indicator.innerText()) === 'Ada Lovelace is typing…', { message: 'typing indicator on Email' })
    assert.equal(await bob.page.locator('[data-typing-for=name]').innerText(), '', 'no indicator on other fields')
    await eventually(async () => (await bob.page.getByLabel('Email').inputValue()) === 'grace@navy.mil', { message: 'email on Bob\'s side' })
    await screenshot(bob.page, 'contacts-typing')

    // Bob types into the same field while Ada's caret is in it: both edits survive, Ada's caret
    // stays where it was (at the end of her text, before Bob's prefix moved it).
    await bob.page.getByLabel('Email').click()
    await bob.page.keyboard.press('Home')
    await bob.page.keyboard.type('rear-admiral.', { delay: 20 })
    await eventually(async () => (await email.inputValue()) === 'rear-admiral.grace@navy.mil', { message: 'merged email on Ada\'s side' })
    const caret = await email.evaluate(el => el.selectionStart)
    assert.equal(caret, 'rear-admiral.grace@navy.mil'.length, 'Ada\'s caret kept its place')

    // The mark fades after a few seconds without keystrokes.
    await eventually(async () => (await indicator.innerText()) === '', { timeout: 8000, message: 'typing indicator to clear' })
    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(bob.page.errors, [])
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})
