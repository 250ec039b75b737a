// The note body for the y-websocket screen (`?notes=y-websocket`): ProseMirror bound to the note's
// `default` Y.XmlFragment with @tiptap/y-tiptap (Tiptap's fork of y-prosemirror, the binding its
// Collaboration extension runs on; ySyncPlugin for the content, yCursorPlugin for everyone's caret
// and selection in their colour from awareness, yUndoPlugin for an undo that only undoes your own
// edits). The default note editor is Tiptap over Hocuspocus (tiptap.js); both come from the same
// packages, so the second editor costs the bundle little.
//
// The schema below uses Tiptap's node and mark names (paragraph, heading, bulletList, listItem,
// bold, italic, ...), so a note is the same document in either editor, and the server's typed view
// (crdt-model, which reads paragraphs and headings) understands it too.

import { Schema } from '@tiptap/pm/model'
import { EditorState, Plugin } from '@tiptap/pm/state'
import { EditorView, Decoration, DecorationSet } from '@tiptap/pm/view'
import { keymap } from '@tiptap/pm/keymap'
import { inputRules, wrappingInputRule, textblockTypeInputRule } from '@tiptap/pm/inputrules'
import { baseKeymap, toggleMark, setBlockType, wrapIn, lift } from '@tiptap/pm/commands'
import { wrapInList, splitListItem, liftListItem, sinkListItem } from '@tiptap/pm/schema-list'
import { ySyncPlugin, yCursorPlugin, yUndoPlugin, undo, redo } from '@tiptap/y-tiptap'
import { h, ink } from './ui.js'
import { mentionableEditor } from './people.js'
import { createToolbar, BODY_PLACEHOLDER } from './toolbar.js'

export const schema = new Schema({
  nodes: {
    doc: { content: 'block+' },
    paragraph: {
      group: 'block',
      content: 'inline*',
      parseDOM: [{ tag: 'p' }],
      toDOM: () => ['p', 0]
    },
    heading: {
      group: 'block',
      content: 'inline*',
      attrs: { level: { default: 2 } },
      defining: true,
      parseDOM: [1, 2, 3].map(level => ({ tag: `h${level}`, attrs: { level } })),
      toDOM: node => [`h${node.attrs.level}`, 0]
    },
    blockquote: {
      group: 'block',
      content: 'block+',
      defining: true,
      parseDOM: [{ tag: 'blockquote' }],
      toDOM: () => ['blockquote', 0]
    },
    codeBlock: {
      group: 'block',
      content: 'text*',
      marks: '',
      code: true,
      defining: true,
      attrs: { language: { default: null } },
      parseDOM: [{ tag: 'pre', preserveWhitespace: 'full' }],
      toDOM: () => ['pre', ['code', 0]]
    },
    bulletList: {
      group: 'block',
      content: 'listItem+',
      parseDOM: [{ tag: 'ul' }],
      toDOM: () => ['ul', 0]
    },
    orderedList: {
      group: 'block',
      content: 'listItem+',
      attrs: { start: { default: 1 } },
      parseDOM: [{ tag: 'ol', getAttrs: dom => ({ start: +(dom.getAttribute('start') || 1) }) }],
      toDOM: node => node.attrs.start === 1 ? ['ol', 0] : ['ol', { start: node.attrs.start }, 0]
    },
    listItem: {
      content: 'paragraph block*',
      defining: true,
      parseDOM: [{ tag: 'li' }],
      toDOM: () => ['li', 0]
    },
    horizontalRule: {
      group: 'block',
      parseDOM: [{ tag: 'hr' }],
      toDOM: () => ['hr']
    },
    text: { group: 'inline' },
    hardBreak: {
      inline: true,
      group: 'inline',
      selectable: false,
      parseDOM: [{ tag: 'br' }],
      toDOM: () => ['br']
    }
  },
  marks: {
    bold: {
      parseDOM: [{ tag: 'strong' }, { tag: 'b' }, { style: 'font-weight=bold' }],
      toDOM: () => ['strong', 0]
    },
    italic: {
      parseDOM: [{ tag: 'em' }, { tag: 'i' }, { style: 'font-style=italic' }],
      toDOM: () => ['em', 0]
    },
    strike: {
      parseDOM: [{ tag: 's' }, { tag: 'del' }],
      toDOM: () => ['s', 0]
    },
    code: {
      parseDOM: [{ tag: 'code' }],
      toDOM: () => ['code', 0]
    },
    link: {
      attrs: { href: {} },
      inclusive: false,
      parseDOM: [{ tag: 'a[href]', getAttrs: dom => ({ href: dom.getAttribute('href') }) }],
      toDOM: node => ['a', { href: node.attrs.href, rel: 'noopener noreferrer nofollow' }, 0]
    }
  }
})

const { nodes, marks } = schema

/** Shows a placeholder while the body is a single empty paragraph. */
export function placeholder (text) {
  return new Plugin({
    props: {
      decorations (state) {
        const { doc } = state
        if (doc.childCount !== 1 || !doc.firstChild.isTextblock || doc.firstChild.content.size > 0) return null
        return DecorationSet.create(doc, [
          Decoration.node(0, doc.firstChild.nodeSize, { class: 'is-empty', 'data-placeholder': text })
        ])
      }
    }
  })
}

/**
 * The caret of a collaborator: a bar in their colour with their name above it, in white on the
 * colour darkened to be readable (`ink`). Tiptap's CollaborationCaret renders with the same
 * function under its own class names.
 */
export function caretElement (user, { caret = 'ProseMirror-yjs-cursor', label: labelClass = '' } = {}) {
  const color = ink(user.color)
  const cursor = document.createElement('span')
  cursor.className = caret
  cursor.style.borderColor = color
  const label = document.createElement('div')
  if (labelClass) label.className = labelClass
  label.style.backgroundColor = color
  label.textContent = user.name
  cursor.append(document.createTextNode('\u2060'), label, document.createTextNode('\u2060'))
  return cursor
}

function selectionBuilder (user) {
  return { style: `background-color: ${user.color}33`, class: 'ProseMirror-yjs-selection' }
}

function isMarkActive (state, type) {
  const { from, $from, to, empty } = state.selection
  if (empty) return !!type.isInSet(state.storedMarks || $from.marks())
  return state.doc.rangeHasMark(from, to, type)
}

function isBlockActive (state, type, attrs = {}) {
  const { $from } = state.selection
  for (let d = $from.depth; d > 0; d--) {
    const node = $from.node(d)
    if (node.type === type && Object.entries(attrs).every(([k, v]) => node.attrs[k] === v)) return true
  }
  return false
}

function toggleHeading (level) {
  return (state, dispatch) => isBlockActive(state, nodes.heading, { level })
    ? setBlockType(nodes.paragraph)(state, dispatch)
    : setBlockType(nodes.heading, { level })(state, dispatch)
}

function toggleList (type) {
  return (state, dispatch) => isBlockActive(state, type)
    ? liftListItem(nodes.listItem)(state, dispatch)
    : wrapInList(type)(state, dispatch)
}

function toggleQuote (state, dispatch) {
  return isBlockActive(state, nodes.blockquote) ? lift(state, dispatch) : wrapIn(nodes.blockquote)(state, dispatch)
}

/** The block shortcuts Tiptap's StarterKit has: `# ` to `### `, `- ` (or `* `), `1. `, `> `. */
function markdownShortcuts () {
  return inputRules({
    rules: [
      textblockTypeInputRule(/^(#{1,3})\s$/, nodes.heading, match => ({ level: match[1].length })),
      wrappingInputRule(/^\s*([-+*])\s$/, nodes.bulletList),
      wrappingInputRule(/^(\d+)\.\s$/, nodes.orderedList, match => ({ start: Number(match[1]) }),
        (match, node) => node.childCount + node.attrs.start === Number(match[1])),
      wrappingInputRule(/^\s*>\s$/, nodes.blockquote)
    ]
  })
}

const TOOLS = [
  { label: 'Bold', key: 'Ctrl+B', text: 'B', cls: 'tool-bold', run: toggleMark(marks.bold), active: s => isMarkActive(s, marks.bold) },
  { label: 'Italic', key: 'Ctrl+I', text: 'I', cls: 'tool-italic', run: toggleMark(marks.italic), active: s => isMarkActive(s, marks.italic) },
  { label: 'Strikethrough', key: 'Ctrl+Shift+S', text: 'S', cls: 'tool-strike', run: toggleMark(marks.strike), active: s => isMarkActive(s, marks.strike) },
  { label: 'Inline code', key: 'Ctrl+E', text: '</>', run: toggleMark(marks.code), active: s => isMarkActive(s, marks.code) },
  { sep: true },
  { label: 'Heading', key: 'Ctrl+Alt+2', text: 'H', run: toggleHeading(2), active: s => isBlockActive(s, nodes.heading, { level: 2 }) },
  { label: 'Bulleted list', key: 'Ctrl+Shift+8', text: '•', run: toggleList(nodes.bulletList), active: s => isBlockActive(s, nodes.bulletList) },
  { label: 'Numbered list', key: 'Ctrl+Shift+7', text: '1.', run: toggleList(nodes.orderedList), active: s => isBlockActive(s, nodes.orderedList) },
  { label: 'Quote', key: 'Ctrl+Shift+B', text: '❝', run: toggleQuote, active: s => isBlockActive(s, nodes.blockquote) },
  { sep: true },
  { label: 'Undo', key: 'Ctrl+Z', text: '↶', run: undo },
  { label: 'Redo', key: 'Ctrl+Shift+Z', text: '↷', run: redo }
]

/**
 * Mounts an editor for `fragment` (the note's `default` Y.XmlFragment) in `host`.
 * Returns { view, destroy }.
 */
export function createEditor (host, fragment, awareness, { label = 'Note body' } = {}) {
  const toolbar = createToolbar(TOOLS.map(tool => tool.sep ? tool : {
    ...tool,
    run: () => tool.run(view.state, view.dispatch, view)
  }), () => view.focus())
  const area = h('div', { class: 'editor-area' })
  host.append(toolbar.el, area)

  const state = EditorState.create({
    schema,
    plugins: [
      ySyncPlugin(fragment),
      yCursorPlugin(awareness, { cursorBuilder: user => caretElement(user), selectionBuilder }),
      yUndoPlugin(),
      keymap({
        'Mod-z': undo,
        'Mod-y': redo,
        'Mod-Shift-z': redo,
        'Mod-b': toggleMark(marks.bold),
        'Mod-i': toggleMark(marks.italic),
        'Mod-Shift-s': toggleMark(marks.strike),
        'Mod-e': toggleMark(marks.code),
        'Mod-Alt-1': toggleHeading(1),
        'Mod-Alt-2': toggleHeading(2),
        'Mod-Alt-0': setBlockType(nodes.paragraph),
        'Mod-Shift-8': toggleList(nodes.bulletList),
        'Mod-Shift-7': toggleList(nodes.orderedList),
        'Mod-Shift-b': toggleQuote,
        Enter: splitListItem(nodes.listItem),
        // Tab indents only inside a list; elsewhere it moves focus as usual.
        Tab: sinkListItem(nodes.listItem),
        'Shift-Tab': liftListItem(nodes.listItem),
        'Shift-Enter': (state, dispatch) => {
          dispatch?.(state.tr.replaceSelectionWith(nodes.hardBreak.create()).scrollIntoView())
          return true
        }
      }),
      keymap(baseKeymap),
      markdownShortcuts(),
      placeholder(BODY_PLACEHOLDER)
    ]
  })

  const view = new EditorView(area, {
    state,
    attributes: {
      role: 'textbox',
      'aria-multiline': 'true',
      'aria-label': label,
      class: 'prose',
      spellcheck: 'true'
    },
    // `@` offers the people of the workspace (before the keymap sees Enter or Tab).
    handleKeyDown: (_, e) => mentions?.key(e) ?? false,
    // `this`, not `view`: y-prosemirror dispatches while the view is still being constructed.
    dispatchTransaction (tr) {
      const next = this.state.apply(tr)
      this.updateState(next)
      toolbar.update(next)
      if (this.hasFocus()) mentions?.update()
    }
  })
  const mentions = mentionableEditor(view, area)
  view.dom.addEventListener('blur', () => setTimeout(mentions.hide, 150))
  toolbar.update(view.state)
  return { view, destroy: () => view.destroy() }
}
