// Offline editing: a context taken offline keeps editing (the app disconnects its providers when
// the browser reports the network gone), the other side does not see those edits meanwhile, and
// both converge once the network is back. A reload while offline keeps the edits (IndexedDB for
// the documents, the service worker's cache for the page).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, screenshot, eventually, bodyText, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

async function sharedNote (ada, bob) {
  await ada.page.getByTestId('new-note').click()
  await ada.page.waitForURL(/#\/notes\/[a-z0-9]+$/)
  await ada.page.getByLabel('Title').fill('Field notes')
  const id = ada.page.url().split('/').pop()
  await bob.page.goto(ada.page.url())
  await eventually(async () => (await bob.page.getByLabel('Title').inputValue()) === 'Field notes', { message: 'title on Bob\'s side' })
  const adaBody = ada.page.locator('[data-testid=note-editor] .ProseMirror')
  await adaBody.click()
  await ada.page.keyboard.type('Shared start.')
  await eventually(async () => (await bodyText(bob.page)).includes('Shared start.'), { message: 'initial text on Bob\'s side' })
  return id
}

const state = page => page.getByTestId('connection').getAttribute('data-state')

test('edits made offline merge when the connection returns', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#4f46e5')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#e11d48')
  try {
    await sharedNote(ada, bob)

    await ada.context.setOffline(true)
    await eventually(async () => (await state(ada.page)) === 'offline', { message: 'Ada\'s indicator to say offline' })
    // Ada leaves Bob's presence within seconds (her app closes its sockets; a close frame that
    // never arrives is caught by the server's presence ping).
    await eventually(async () => (await bob.page.getByTestId('viewer-count').innerText()) === '1', { timeout: 5000, message: 'Ada gone from Bob\'s viewers' })
    await screenshot(ada.page, 'offline-ada')

    await ada.page.locator('[data-testid=note-editor] .ProseMirror').click()
    await ada.page.keyboard.press('Control+End')
    await ada.page.keyboard.type(' Written on the train.')
    await bob.page.locator('[data-testid=note-editor] .ProseMirror').click()
    await bob.page.keyboard.press('Control+Home')
    await bob.page.keyboard.type('Meanwhile at the office. ')
    // Give the edits time to (not) travel: Ada is really cut off.
    await bob.page.waitForTimeout(1000)
    assert.ok(!(await bodyText(bob.page)).includes('Written on the train.'), 'offline edit leaked while offline')
    assert.ok(!(await bodyText(ada.page)).includes('Meanwhile at the office.'), 'online edit reached an offline client')

    await ada.context.setOffline(false)
    await eventually(async () => (await state(ada.page)) === 'connected', { message: 'Ada reconnected' })
    const merged = await eventually(async () => {
      const [a, b] = await Promise.all([bodyText(ada.page), bodyText(bob.page)])
      return a === b && a.includes('Written on the train.') && a.includes('Meanwhile at the office.') ? a : null
    }, { message: 'both sides to converge on both edits' })
    assert.ok(merged.includes('Shared start.'))
    await screenshot(bob.page, 'offline-merged')
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})

test('a reload while offline keeps the offline edits, which reach the server later', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#4f46e5')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#e11d48')
  try {
    const id = await sharedNote(ada, bob)
    // The service worker has cached the page once it controls it.
    await eventually(() => ada.page.evaluate(() => !!navigator.serviceWorker?.controller), { message: 'service worker in control' })

    await ada.context.setOffline(true)
    await eventually(async () => (await state(ada.page)) === 'offline', { message: 'offline' })
    await ada.page.locator('[data-testid=note-editor] .ProseMirror').click()
    await ada.page.keyboard.press('Control+End')
    await ada.page.keyboard.type(' Kept across a reload.')
    // y-indexeddb writes each update as it happens; give the write a moment before reloading.
    await ada.page.waitForTimeout(500)
    await ada.page.reload({ timeout: WAIT })
    await eventually(async () => (await bodyText(ada.page)).includes('Kept across a reload.'), { message: 'offline edit after reload' })
    assert.equal(await state(ada.page), 'offline')
    assert.ok(!(await bodyText(bob.page)).includes('Kept across a reload.'))

    await ada.context.setOffline(false)
    await eventually(async () => (await bodyText(bob.page)).includes('Kept across a reload.'), { message: 'the edit to reach Bob' })
    assert.match(ada.page.url(), new RegExp(`#/notes/${id}$`))
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})

// A reconnecting y-websocket client announces its presence again with its old clock, and the
// server may see the old socket's close before or after that; either way the others see it back.
test('presence comes back within 5 s of a reconnect', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#4f46e5')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#e11d48')
  try {
    await sharedNote(ada, bob)
    await eventually(async () => (await bob.page.getByTestId('viewer-count').innerText()) === '2', { message: 'two viewers' })
    await ada.context.setOffline(true)
    await eventually(async () => (await state(ada.page)) === 'offline', { message: 'offline' })
    await ada.context.setOffline(false)
    await eventually(async () => (await state(ada.page)) === 'connected', { message: 'Ada reconnected' })
    await bob.page.waitForTimeout(1000)
    await eventually(async () => (await bob.page.getByTestId('viewer-count').innerText()) === '2', { timeout: 5000, message: 'Ada back in Bob\'s presence' })
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})
