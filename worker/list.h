/*
 * list.h: container_of and an intrusive doubly linked list, the one
 * definition the engine uses (the struct embeds the node, as in the Linux
 * kernel and libuv's queue.h): no allocation to move an item between lists.
 */
#ifndef SL_LIST_H
#define SL_LIST_H

#include <stddef.h>

/* The struct of type `type` whose member `member` is at `ptr`. */
#define container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct sl_list {
  struct sl_list *prev, *next;
};

/* An empty list head, or a node on no list (it points at itself). */
static inline void sl_list_init(struct sl_list *l) { l->prev = l->next = l; }

static inline int sl_list_empty(const struct sl_list *l) {
  return l->next == l;
}

/* Append x at the tail of head (lists keep arrival order). */
static inline void sl_list_add_tail(struct sl_list *head, struct sl_list *x) {
  x->prev = head->prev;
  x->next = head;
  head->prev->next = x;
  head->prev = x;
}

/* Unlink x (a no-op for a node on no list); x is left on no list. */
static inline void sl_list_del(struct sl_list *x) {
  if (!x->next || x->next == x)
    return;
  x->prev->next = x->next;
  x->next->prev = x->prev;
  sl_list_init(x);
}

#define sl_list_for_each(pos, head) \
  for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif
