// Notes: a list from the index, a titled rich-text body edited together (remote carets in each
// collaborator's colour), tags, and a reply thread. Private notes live under
// `private/<user>/notes/<id>` and are listed in `private/<user>/index`, never in the shared index.

import * as Y from 'yjs'
import { h, mount, newId, ago, announce } from './ui.js'
import { openDoc, release, setFocus, writeSummary, person, currentUser, forgetLocal } from './sync.js'
import { bindText } from './bind-text.js'
import { createEditor } from './editor.js'
import { createTiptapEditor } from './tiptap.js'
import { createThread } from './thread.js'
import { createChips } from './chips.js'
import { splitLayout, indexList, trackUpdates, emptyPane, lockIcon, TOUCH, guardExistence, confirmButton, deleteDocument } from './common.js'

export function noteDocName (user, id, isPrivate) {
  return isPrivate ? `private/${user.sub}/notes/${id}` : `notes/${id}`
}

export function noteHref (id, isPrivate) {
  return isPrivate ? `#/private/notes/${encodeURIComponent(id)}` : `#/notes/${encodeURIComponent(id)}`
}

export function notesScreen (main, params, ctx) {
  const { user, shared, mine } = ctx
  const cleanups = []

  const privateBox = h('input', { type: 'checkbox', id: 'new-note-private' })
  const actions = h('form', {
    class: 'new-form',
    onsubmit: e => {
      e.preventDefault()
      const isPrivate = privateBox.checked
      const id = createNote(isPrivate)
      privateBox.checked = false
      location.hash = noteHref(id, isPrivate)
    }
  },
  h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'new-note' }, '+ New note'),
  h('label', { class: 'check', for: 'new-note-private' }, privateBox, lockIcon(), 'Private'))
  function createNote (isPrivate) {
    const id = newId()
    const entry = openDoc(noteDocName(user, id, isPrivate))
    const now = Date.now()
    entry.doc.transact(() => {
      entry.doc.getText('title')
      const meta = entry.doc.getMap('meta')
      meta.set('author', user.sub)
      meta.set('created', now)
      meta.set('updated', now)
      meta.set('private', isPrivate)
    })
    writeSummary(isPrivate ? mine.doc : shared.doc, 'notes', id, isPrivate ? { title: '', updated: now, private: true } : { title: '', updated: now })
    release(entry) // the note screen opens it again right away (the grace period keeps it)
    announce(isPrivate ? 'Private note created' : 'Note created')
    sessionStorage.setItem('tandem.focusTitle', id)
    return id
  }

  const list = indexList({
    sources: [
      { doc: shared.doc, map: 'notes', href: row => noteHref(row.id, false) },
      { doc: mine.doc, map: 'notes', href: row => noteHref(row.id, true), private: true }
    ],
    selected: params.id ? { id: params.id, private: params.private } : null,
    label: 'All notes',
    empty: 'No notes yet. Create the first one.',
    untitled: 'Untitled note'
  })
  cleanups.push(list.destroy)

  let pane
  if (params.id) {
    const note = noteView(params, ctx)
    pane = note.el
    cleanups.push(note.destroy)
  } else {
    setFocus(shared)
    pane = emptyPane('✎', 'Pick a note', 'Open a note from the list, or start a new one. Anyone who opens the same note edits it with you live.',
      h('button', { type: 'button', class: 'btn', onclick: () => actions.requestSubmit() }, 'Start a note'))
  }
  mount(main, splitLayout({ title: 'Notes', actions, list, pane, back: params.id ? '#/notes' : null }))
  if (params.id && sessionStorage.getItem('tandem.focusTitle') === params.id) {
    sessionStorage.removeItem('tandem.focusTitle')
    main.querySelector('.title-input')?.focus()
  }
  return () => cleanups.forEach(fn => fn())
}

function noteView (params, ctx) {
  const { user, shared, mine } = ctx
  const isPrivate = params.private
  const entry = openDoc(noteDocName(user, params.id, isPrivate))
  setFocus(entry)
  const { doc } = entry
  const title = doc.getText('title')
  const meta = doc.getMap('meta')
  const index = isPrivate ? mine.doc : shared.doc

  const titleInput = h('input', {
    class: 'title-input',
    'aria-label': 'Title',
    placeholder: 'Untitled note',
    autocomplete: 'off'
  })
  const unbindTitle = bindText(titleInput, title)

  const metaLine = h('p', { class: 'doc-meta' })
  const remove = confirmButton({
    label: 'Delete',
    testid: 'delete',
    question: isPrivate ? 'Delete this private note?' : 'Delete this note for everyone?',
    confirm: 'Delete note',
    run: async () => {
      await deleteDocument(`${isPrivate ? 'private/notes' : 'notes'}/${encodeURIComponent(params.id)}`, 'note')
      forgetLocal(entry)
      location.hash = '#/notes'
    }
  })
  const renderMeta = () => {
    const author = meta.get('author')
    const parts = []
    if (author) parts.push(`Created by ${person(author).name}`)
    if (meta.get('updated')) parts.push(`edited ${ago(meta.get('updated'))}`)
    mount(metaLine,
      isPrivate ? h('span', { class: 'badge badge-private' }, lockIcon(), 'Private · only you') : h('span', { class: 'badge' }, 'Shared with the workspace'),
      h('span', {}, parts.join(' · ')), remove)
  }
  meta.observe(renderMeta)
  renderMeta()

  const tags = createChips(doc.getArray('tags'), { label: 'Tags', placeholder: 'Add tag…', format: v => `#${v}` })

  const editorHost = h('div', { class: 'editor', 'data-testid': 'note-editor' })
  // Tiptap over Hocuspocus, or (`?notes=y-websocket`) ProseMirror over y-websocket: one document.
  editorHost.dataset.editor = entry.dialect === 'hocuspocus' ? 'tiptap' : 'prosemirror'
  const editor = entry.dialect === 'hocuspocus'
    ? createTiptapEditor(editorHost, entry, currentUser())
    : createEditor(editorHost, doc.getXmlFragment('default'), entry.awareness)

  const thread = createThread(doc.getArray('replies'), { noun: 'reply', title: 'Replies' })

  const stopTracking = trackUpdates(entry, now => {
    doc.transact(() => meta.set('updated', now), TOUCH)
    writeSummary(index, 'notes', params.id, isPrivate ? { title: title.toString(), updated: now, private: true } : { title: title.toString(), updated: now })
  }, { every: 800 })

  // The document is the truth: once it is loaded, repair an index row that lags behind it
  // (a title changed by a client that never wrote the index, a note opened from a link).
  const heal = () => {
    if (!entry.synced && !entry.localLoaded) return
    const row = index.getMap('notes').get(params.id)
    const t = title.toString()
    if (!(row instanceof Y.Map) || row.get('title') !== t) {
      if (meta.size === 0 && t === '' && doc.getXmlFragment('default').length === 0) return // nothing there (yet)
      writeSummary(index, 'notes', params.id, isPrivate ? { title: t, updated: meta.get('updated') || Date.now(), private: true } : { title: t, updated: meta.get('updated') || Date.now() })
    }
  }
  entry.provider.on('sync', heal)
  entry.idb.whenSynced.then(heal, () => {})

  const el = h('section', { class: 'pane note-pane', 'aria-label': 'Note' },
    h('article', { class: 'doc' },
      h('header', { class: 'doc-head' }, titleInput, metaLine, tags.el),
      editorHost,
      thread.el))
  const stopGuard = guardExistence(entry,
    () => meta.size > 0 || title.length > 0 || doc.getXmlFragment('default').length > 0, el)

  return {
    el,
    destroy () {
      stopGuard()
      stopTracking()
      entry.provider.off('sync', heal)
      unbindTitle()
      meta.unobserve(renderMeta)
      tags.destroy()
      editor.destroy()
      thread.destroy()
      release(entry)
    }
  }
}
