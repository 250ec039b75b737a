// An editable list of short strings kept in a Y.Array (note tags, issue labels and assignees).

import { h } from './ui.js'

/** Returns { el, destroy } for `array` (Y.Array of strings). */
export function createChips (array, { label, placeholder, format = v => v }) {
  const list = h('ul', { class: 'chips', 'aria-label': label })
  const input = h('input', {
    class: 'chip-input',
    placeholder,
    'aria-label': `Add ${label.toLowerCase().replace(/s$/, '')}`,
    onkeydown: e => {
      if (e.key === 'Enter' || e.key === ',') {
        e.preventDefault()
        add(input.value)
        input.value = ''
      } else if (e.key === 'Backspace' && input.value === '' && array.length > 0) {
        array.delete(array.length - 1, 1)
      }
    }
  })

  function add (raw) {
    const value = raw.trim().replace(/,$/, '')
    if (!value) return
    if (array.toArray().includes(value)) return
    array.push([value])
  }

  function render () {
    const values = array.toArray().filter(v => typeof v === 'string')
    list.replaceChildren(...values.map(value => h('li', { class: 'chip' },
      h('span', {}, format(value)),
      h('button', {
        type: 'button',
        class: 'chip-remove',
        'aria-label': `Remove ${format(value)}`,
        onclick: () => {
          const at = array.toArray().indexOf(value)
          if (at >= 0) array.delete(at, 1)
          input.focus()
        }
      }, '×'))), h('li', { class: 'chip-input-wrap' }, input))
  }
  const observer = () => {
    const hadFocus = document.activeElement === input
    render()
    if (hadFocus) input.focus()
  }
  array.observe(observer)
  render()
  return { el: list, add, destroy: () => array.unobserve(observer) }
}
