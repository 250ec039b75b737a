// The note body as a Tiptap editor: StarterKit, Collaboration on the note's `default`
// Y.XmlFragment and CollaborationCaret on the document's Hocuspocus provider (everyone's caret and
// selection in their colour, with their name). The ProseMirror editor in editor.js binds the same
// fragment with the same node and mark names, so a note is one document whichever editor (and
// dialect) opened it. The marks and blocks StarterKit offers beyond that schema (underline,
// headings past level 3) are turned off so that neither editor meets content it cannot show.

import { Editor, Extension } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import { h } from './ui.js'
import { mentionableEditor } from './people.js'
import { createToolbar, BODY_PLACEHOLDER } from './toolbar.js'
import { placeholder, caretElement } from './editor.js'

const Placeholder = Extension.create({
  name: 'bodyPlaceholder',
  addProseMirrorPlugins: () => [placeholder(BODY_PLACEHOLDER)]
})

/** Toolbar tools as Tiptap commands; `ed()` is the editor (made after the toolbar). */
function tools (ed) {
  const run = name => () => ed().chain().focus()[name]().run()
  const active = (name, attrs) => () => ed().isActive(name, attrs)
  return [
    { label: 'Bold', key: 'Ctrl+B', text: 'B', cls: 'tool-bold', run: run('toggleBold'), active: active('bold') },
    { label: 'Italic', key: 'Ctrl+I', text: 'I', cls: 'tool-italic', run: run('toggleItalic'), active: active('italic') },
    { label: 'Strikethrough', key: 'Ctrl+Shift+S', text: 'S', cls: 'tool-strike', run: run('toggleStrike'), active: active('strike') },
    { label: 'Inline code', key: 'Ctrl+E', text: '</>', run: run('toggleCode'), active: active('code') },
    { sep: true },
    { label: 'Heading', key: 'Ctrl+Alt+2', text: 'H', run: () => ed().chain().focus().toggleHeading({ level: 2 }).run(), active: active('heading', { level: 2 }) },
    { label: 'Bulleted list', key: 'Ctrl+Shift+8', text: '•', run: run('toggleBulletList'), active: active('bulletList') },
    { label: 'Numbered list', key: 'Ctrl+Shift+7', text: '1.', run: run('toggleOrderedList'), active: active('orderedList') },
    { label: 'Quote', key: 'Ctrl+Shift+B', text: '❝', run: run('toggleBlockquote'), active: active('blockquote') },
    { sep: true },
    { label: 'Undo', key: 'Ctrl+Z', text: '↶', run: run('undo') },
    { label: 'Redo', key: 'Ctrl+Shift+Z', text: '↷', run: run('redo') }
  ]
}

/**
 * Mounts a Tiptap editor for the note document `entry` (opened over Hocuspocus) in `host`, with
 * `user` ({ name, color, sub }) as the local caret. Returns { editor, view, destroy }.
 */
export function createTiptapEditor (host, entry, user, { label = 'Note body' } = {}) {
  let editor = null
  const toolbar = createToolbar(tools(() => editor), () => editor.commands.focus())
  const area = h('div', { class: 'editor-area' })
  host.append(toolbar.el, area)

  let mentions = null
  editor = new Editor({
    element: area,
    extensions: [
      StarterKit.configure({
        undoRedo: false, // Collaboration's undo only undoes this user's edits
        underline: false,
        heading: { levels: [1, 2, 3] },
        link: { openOnClick: false }
      }),
      Collaboration.configure({ fragment: entry.doc.getXmlFragment('default') }),
      CollaborationCaret.configure({
        provider: entry.provider,
        render: user => caretElement(user, { caret: 'collaboration-carets__caret', label: 'collaboration-carets__label' }),
        user: user ? { name: user.name, color: user.color, sub: user.sub } : { name: 'Someone', color: '#64748b' }
      }),
      Placeholder
    ],
    editorProps: {
      attributes: { role: 'textbox', 'aria-multiline': 'true', 'aria-label': label, class: 'prose', spellcheck: 'true' },
      // `@` offers the people of the workspace (before the keymaps see Enter or Tab).
      handleKeyDown: (_, e) => mentions?.key(e) ?? false
    },
    onTransaction: () => {
      if (!editor) return // Collaboration's first sync runs inside the constructor
      toolbar.update()
      if (editor?.isFocused) mentions?.update()
    },
    onBlur: () => setTimeout(() => mentions?.hide(), 150)
  })
  mentions = mentionableEditor(editor.view, area)
  toolbar.update()
  return { editor, view: editor.view, destroy: () => editor.destroy() }
}
