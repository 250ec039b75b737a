// The note editor is Tiptap over Hocuspocus (`/hocuspocus`): two contexts type in the same note and
// see each other's text and carets (CollaborationCaret's caret with the other's name, in their
// colour) and `@` mentions work in the body, over one Hocuspocus socket per page however many notes it opens. A note opened in the
// ProseMirror editor over y-websocket (`?notes=y-websocket`) is the same document: text, carets and
// presence cross between the two dialects.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveAndBrowse, signedIn, screenshot, eventually, bodyText, WAIT } from './harness.mjs'

let server, browser
serveAndBrowse((s, b) => { server = s; browser = b })

/** Records the page's websockets by path (`/sync/<document>`, `/hocuspocus`). */
function watchSockets (page) {
  const opened = []
  page.on('websocket', ws => opened.push(decodeURIComponent(new URL(ws.url()).pathname)))
  return {
    /** Sockets opened on `path` (y-websocket's `/sync/<document>` counts for `/sync` too). */
    count: path => opened.filter(p => p === path || p.startsWith(path + '/')).length
  }
}

const body = page => page.locator('[data-testid=note-editor] .ProseMirror')

/** Ada makes a shared note titled `title`; returns its id. */
async function newNote (page, title) {
  await page.getByTestId('new-note').click()
  await page.waitForURL(/#\/notes\/[a-z0-9]+$/)
  await page.getByLabel('Title').fill(title)
  return page.url().split('/').pop()
}

test('two Tiptap contexts type together and see each other\'s carets', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#e11d48')
  const bob = await signedIn(browser, server.url, 'Bob Stone', '#047857')
  const adaSockets = watchSockets(ada.page)
  try {
    const id = await newNote(ada.page, 'Tiptap plan')
    await bob.page.goto(ada.page.url())
    await eventually(async () => (await bob.page.getByLabel('Title').inputValue()) === 'Tiptap plan', { message: 'title on Bob\'s side' })
    for (const { page } of [ada, bob]) {
      assert.equal(await page.getByTestId('note-editor').getAttribute('data-editor'), 'tiptap')
    }

    await body(ada.page).click()
    await body(bob.page).click()
    const adaWords = 'Ada types in Tiptap. '
    const bobWords = 'Bob answers in Tiptap. '
    await Promise.all([
      ada.page.keyboard.type(adaWords, { delay: 15 }),
      bob.page.keyboard.type(bobWords, { delay: 15 })
    ])
    const converged = await eventually(async () => {
      const [a, b] = await Promise.all([bodyText(ada.page), bodyText(bob.page)])
      return a === b && a.includes(adaWords.trim()) && a.includes(bobWords.trim()) ? a : null
    }, { message: 'both bodies to hold both edits' })
    assert.ok(converged.includes(adaWords.trim()) && converged.includes(bobWords.trim()))

    // Each sees the other's caret: CollaborationCaret's element, the name as its label, their colour.
    const adaOnBob = bob.page.locator('.collaboration-carets__caret', { hasText: 'Ada Lovelace' })
    const bobOnAda = ada.page.locator('.collaboration-carets__caret', { hasText: 'Bob Stone' })
    await adaOnBob.waitFor({ timeout: WAIT })
    await bobOnAda.waitFor({ timeout: WAIT })
    assert.equal(await adaOnBob.evaluate(el => getComputedStyle(el).borderLeftColor), 'rgb(225, 29, 72)')
    assert.equal(await bobOnAda.evaluate(el => getComputedStyle(el).borderLeftColor), 'rgb(4, 120, 87)')
    assert.equal(await adaOnBob.locator('.collaboration-carets__label').innerText(), 'Ada Lovelace')
    // Neither shows its own caret as a remote one.
    assert.equal(await ada.page.locator('.collaboration-carets__caret', { hasText: 'Ada Lovelace' }).count(), 0)

    // Presence in the top bar comes from the same awareness.
    await bob.page.locator('[data-testid=presence] .avatar[data-name="Ada Lovelace"]').waitFor({ timeout: WAIT })
    await eventually(async () => (await bob.page.getByTestId('viewer-count').innerText()) === '2', { message: 'viewer count 2' })

    // `@` in the Tiptap body offers the people; picking one writes the mention, which notifies.
    await body(ada.page).click()
    await ada.page.keyboard.press('Control+End')
    await ada.page.keyboard.press('Enter')
    await ada.page.keyboard.type('Ping @bo')
    await ada.page.getByTestId('mention-list').getByRole('option', { name: /Bob Stone/ }).waitFor({ timeout: WAIT })
    await ada.page.keyboard.press('Enter')
    await eventually(async () => (await bodyText(ada.page)).includes('Ping @bob-stone '), { message: 'the mention in Ada\'s body' })
    assert.ok(await ada.page.getByTestId('mention-list').isHidden())
    await eventually(async () => (await bodyText(bob.page)).includes('Ping @bob-stone'), { message: 'the mention on Bob\'s side' })
    await bob.page.getByTestId('bell').click()
    await bob.page.getByTestId('notifications').getByRole('link', { name: /Ada Lovelace mentioned you in/ }).waitFor({ timeout: WAIT })
    await bob.page.getByTestId('bell').click()

    // Formatting from the toolbar reaches the other side as the same mark.
    await body(ada.page).click()
    await ada.page.keyboard.press('Control+End')
    await ada.page.getByRole('button', { name: 'Bold' }).click()
    await ada.page.keyboard.type('Loud words')
    await bob.page.locator('[data-testid=note-editor] strong', { hasText: 'Loud words' }).waitFor({ timeout: WAIT })

    // A second note on Ada's page rides the same Hocuspocus socket.
    await ada.page.goto(`${server.url}/#/notes`)
    const second = await newNote(ada.page, 'Second note')
    assert.notEqual(second, id)
    await body(ada.page).click()
    await ada.page.keyboard.type('Another document.')
    await ada.page.locator(`.item-link[data-id="${id}"]`).click()
    await eventually(async () => (await bodyText(ada.page)).includes('Loud words'), { message: 'first note again' })
    assert.equal(adaSockets.count('/hocuspocus'), 1, 'one Hocuspocus socket for every note of the page')

    await screenshot(bob.page, 'tiptap-bob')
    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(bob.page.errors, [])
  } finally {
    await ada.context.close()
    await bob.context.close()
  }
})

test('a note is one document in Tiptap over Hocuspocus and in ProseMirror over y-websocket', async () => {
  const ada = await signedIn(browser, server.url, 'Ada Lovelace', '#e11d48')
  const cyd = await signedIn(browser, server.url, 'Cyd Marsh', '#047857')
  const cydSockets = watchSockets(cyd.page)
  try {
    const id = await newNote(ada.page, 'Both dialects')
    await body(ada.page).click()
    await ada.page.keyboard.type('Written in Tiptap. ')

    // Cyd opens it in the y-websocket screen.
    await cyd.page.goto(`${server.url}/?notes=y-websocket#/notes/${id}`)
    await eventually(async () => (await cyd.page.getByLabel('Title').inputValue()) === 'Both dialects', { message: 'title on Cyd\'s side' })
    assert.equal(await cyd.page.getByTestId('note-editor').getAttribute('data-editor'), 'prosemirror')
    await eventually(async () => (await bodyText(cyd.page)).includes('Written in Tiptap.'), { message: 'Tiptap text in the y-websocket editor' })
    await body(cyd.page).click()
    await cyd.page.keyboard.press('Control+End')
    await cyd.page.keyboard.type('Answered over y-websocket.')
    await eventually(async () => (await bodyText(ada.page)).includes('Answered over y-websocket.'), { message: 'y-websocket text in Tiptap' })
    assert.equal(await bodyText(ada.page), await bodyText(cyd.page))

    // Carets and presence cross the dialects both ways.
    await ada.page.locator('.collaboration-carets__caret', { hasText: 'Cyd Marsh' }).waitFor({ timeout: WAIT })
    await body(ada.page).click()
    await ada.page.keyboard.press('Control+Home')
    await cyd.page.locator('.ProseMirror-yjs-cursor', { hasText: 'Ada Lovelace' }).waitFor({ timeout: WAIT })
    await ada.page.locator('[data-testid=presence] .avatar[data-name="Cyd Marsh"]').waitFor({ timeout: WAIT })
    await cyd.page.locator('[data-testid=presence] .avatar[data-name="Ada Lovelace"]').waitFor({ timeout: WAIT })
    assert.equal(cydSockets.count('/hocuspocus'), 0, 'the y-websocket screen opened no Hocuspocus socket')
    assert.equal(cydSockets.count(`/sync/notes/${id}`), 1, 'the note over y-websocket')

    await screenshot(cyd.page, 'tiptap-cross-dialect')
    assert.deepEqual(ada.page.errors, [])
    assert.deepEqual(cyd.page.errors, [])
  } finally {
    await ada.context.close()
    await cyd.context.close()
  }
})
