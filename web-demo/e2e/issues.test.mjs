// The issues board: a status change (select or drag and drop) in one context moves the card in the
// other; comments on an issue reach the other side.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, screenshot, eventually, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

const column = (page, status) => page.locator(`.column[data-status="${status}"]`)

test('a status change on the issues board appears in the other context', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#b45309')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#0f766e')
  try {
    // Ada files an issue.
    await ada.page.getByRole('link', { name: 'Issues' }).click()
    await ada.page.getByTestId('new-issue').click()
    await ada.page.waitForURL(/#\/issues\/[a-z0-9]+$/)
    const id = ada.page.url().split('/').pop()
    await ada.page.getByLabel('Title').fill('Login button does nothing')
    await ada.page.getByLabel('Description').fill('Steps: open the page, click Login.')
    await ada.page.getByRole('link', { name: '← Board' }).click()
    await column(ada.page, 'open').locator(`.card[data-id="${id}"]`, { hasText: 'Login button does nothing' }).waitFor({ timeout: WAIT })

    await bob.page.getByRole('link', { name: 'Issues' }).click()
    const bobCard = id => bob.page.locator(`.card[data-id="${id}"]`)
    await column(bob.page, 'open').locator(`.card[data-id="${id}"]`).waitFor({ timeout: WAIT })

    // Keyboard path: the card's status select.
    await ada.page.getByLabel('Status of Login button does nothing').selectOption('in_progress')
    await column(bob.page, 'in_progress').locator(`.card[data-id="${id}"]`).waitFor({ timeout: WAIT })
    assert.equal(await column(bob.page, 'open').locator(`.card[data-id="${id}"]`).count(), 0)

    // Pointer path: Bob drags the card to Done; Ada's board follows.
    await bobCard(id).dragTo(column(bob.page, 'done'))
    await column(ada.page, 'done').locator(`.card[data-id="${id}"]`).waitFor({ timeout: WAIT })

    // The issue document itself carries the status, not only the board's index.
    await bobCard(id).getByRole('link').click()
    await eventually(async () => (await bob.page.getByLabel('Status', { exact: true }).inputValue()) === 'done', { message: 'status done in the issue' })
    await bob.page.getByLabel('New comment').fill('Fixed in the last deploy.')
    await bob.page.getByRole('button', { name: 'Add comment' }).click()
    await ada.page.locator(`.card[data-id="${id}"]`).getByRole('link').click()
    await ada.page.locator('.reply-text', { hasText: 'Fixed in the last deploy.' }).waitFor({ timeout: WAIT })
    assert.equal(await ada.page.getByLabel('Description').inputValue(), 'Steps: open the page, click Login.')

    await ada.page.getByRole('link', { name: '← Board' }).click()
    await column(ada.page, 'done').locator(`.card[data-id="${id}"]`).waitFor({ timeout: WAIT })
    await screenshot(ada.page, 'issues-board')
    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(bob.page.errors, [])
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})
