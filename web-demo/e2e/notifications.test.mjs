// Notifications in the browser: Bob's bell counts up when Ada assigns him an issue, the list opens
// the issue, and an `@` in a comment offers the people of the workspace and notifies the one
// picked. The server runs in its default open mode: the demo's dev tokens tell Ada and Bob apart.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, screenshot, eventually, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

const count = async page => {
  const badge = page.getByTestId('bell-count')
  return (await badge.isHidden()) ? 0 : Number(await badge.textContent())
}

test('Bob sees the bell count rise when Ada assigns him, and a mention reaches him', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#b45309')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#0f766e')
  try {
    assert.equal(await count(bob.page), 0)
    await ada.page.getByRole('link', { name: 'Issues' }).click()
    await ada.page.getByTestId('new-issue').click()
    await ada.page.waitForURL(/#\/issues\/[a-z0-9]+$/)
    const id = ada.page.url().split('/').pop()
    await ada.page.getByLabel('Title').fill('Crash on save')
    await ada.page.getByLabel('Add assignee').fill('bob-stone')
    await ada.page.getByLabel('Add assignee').press('Enter')

    await eventually(async () => (await count(bob.page)) === 1, { message: "Bob's bell at 1" })
    assert.equal(await count(ada.page), 0, 'never the actor')
    await bob.page.getByTestId('bell').click()
    const item = bob.page.getByTestId('notifications').getByRole('link', { name: /Ada Lovelace assigned you to/ })
    await item.waitFor({ timeout: WAIT })
    await screenshot(bob.page, 'notifications')
    await item.click()
    await bob.page.waitForURL(new RegExp(`#/issues/${id}$`))
    await eventually(async () => (await count(bob.page)) === 0, { message: 'read once opened' })

    // Ada mentions Bob in a comment, picking him from the list that `@` opens.
    const comment = ada.page.getByLabel('New comment')
    await comment.fill('Can you look, ')
    await comment.pressSequentially('@bo')
    const option = ada.page.getByTestId('mention-list').getByRole('option', { name: /Bob Stone/ })
    await option.waitFor({ timeout: WAIT })
    await comment.press('Enter')
    assert.equal(await comment.inputValue(), 'Can you look, @bob-stone ')
    await ada.page.getByRole('button', { name: 'Add comment' }).click()
    await eventually(async () => (await count(bob.page)) === 1, { message: 'the mention counted' })
    await bob.page.getByTestId('bell').click()
    await bob.page.getByTestId('notifications').getByRole('link', { name: /Ada Lovelace mentioned you in/ }).waitFor({ timeout: WAIT })
    await bob.page.getByRole('button', { name: 'Mark all read' }).click()
    await eventually(async () => (await count(bob.page)) === 0, { message: 'all read' })

    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(bob.page.errors, [])
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})
