//! A member's mailbox: the room's messages for one member, and at most one reason to leave.
//!
//! The room puts messages in without waiting; the member's connection takes everything queued
//! at once. The queue is bounded (a member whose mailbox is full is detached as a slow
//! consumer) but holds no memory while it is empty: an idle socket costs its mailbox about a
//! hundred bytes, where the two channels it replaced (messages, detach) allocated their first
//! block of 32 slots each, up front, on every socket (issue 16, idle sockets). Taking the whole
//! queue in one step is also what lets a connection write a burst with one flush.
//!
//! The room is the only writer and the connection the only reader, so a plain mutex is never
//! held across anything slower than a `VecDeque` operation.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::outgoing::{Detach, Message};

/// The room's end: it queues messages and, once, a reason to detach.
pub struct Mailbox {
    shared: Arc<Shared>,
    capacity: usize,
}

/// The connection's end.
pub struct MailboxReader {
    shared: Arc<Shared>,
    /// Set once the detach was handed out: nothing follows it.
    finished: bool,
}

/// What a connection takes from its mailbox.
#[derive(Debug)]
pub enum Delivery {
    /// Everything queued, oldest first (never empty).
    Messages(VecDeque<Message>),
    /// The room let the member go: after every message queued before it (none if the member
    /// was too slow to keep its queue).
    Detached(Detach),
}

/// The mailbox was full: the member is not keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

struct Shared {
    state: Mutex<State>,
    reader: AtomicWaker,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    detached: Option<Detach>,
    /// The reader is gone: messages are dropped on arrival.
    reader_gone: bool,
}

/// A mailbox holding at most `capacity` messages the reader has not taken yet.
pub fn mailbox(capacity: usize) -> (Mailbox, MailboxReader) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        reader: AtomicWaker::new(),
    });
    let mailbox = Mailbox {
        shared: Arc::clone(&shared),
        capacity: capacity.max(1),
    };
    (
        mailbox,
        MailboxReader {
            shared,
            finished: false,
        },
    )
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the queue is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Mailbox {
    /// Queues `message`, unless the member was already detached or its reader is gone (then
    /// it is dropped: the member is on its way out). `Err(Full)` when the reader has not taken
    /// the `capacity` messages before it yet.
    pub fn push(&self, message: Message) -> Result<(), Full> {
        let mut state = self.shared.state();
        if state.reader_gone || state.detached.is_some() {
            return Ok(());
        }
        if state.queue.len() >= self.capacity {
            return Err(Full);
        }
        // The reader always takes the whole queue, so a queue that already held something has
        // a wake-up on its way: only the first message of a run wakes it.
        let wake = state.queue.is_empty();
        state.queue.push_back(message);
        drop(state);
        if wake {
            self.shared.reader.wake();
        }
        Ok(())
    }

    /// Tells the member why the room lets it go; the first reason stands. What is queued is
    /// still delivered first, except to a slow consumer, whose queue is what it could not read.
    pub fn detach(&self, why: Detach) {
        let mut state = self.shared.state();
        if state.detached.is_some() {
            return;
        }
        state.detached = Some(why);
        if why == Detach::SlowConsumer {
            state.queue = VecDeque::new();
        }
        drop(state);
        self.shared.reader.wake();
    }
}

impl Drop for Mailbox {
    /// A room that ends without detaching its member (it stopped on a failure) still lets it
    /// go: the connection must not wait forever for a room that no longer exists.
    fn drop(&mut self) {
        self.detach(Detach::StorageFailure);
    }
}

impl MailboxReader {
    /// Waits for the next delivery. After a [`Delivery::Detached`] it never returns.
    pub async fn recv(&mut self) -> Delivery {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// What is deliverable now, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        if self.finished {
            return None;
        }
        let mut state = self.shared.state();
        if !state.queue.is_empty() {
            // Taken whole, so the mailbox holds no memory while the connection writes it.
            return Some(Delivery::Messages(std::mem::take(&mut state.queue)));
        }
        let why = state.detached?;
        drop(state);
        self.finished = true;
        Some(Delivery::Detached(why))
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        if let Some(delivery) = self.try_recv() {
            return Poll::Ready(delivery);
        }
        self.shared.reader.register(cx.waker());
        // Checked again after registering: a push in between would otherwise go unnoticed.
        match self.try_recv() {
            Some(delivery) => Poll::Ready(delivery),
            None => Poll::Pending,
        }
    }
}

impl Drop for MailboxReader {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.reader_gone = true;
        state.queue = VecDeque::new();
    }
}

/// A stream of deliveries that ends after the detach, so a connection holding many members can
/// read them together (a `StreamMap`) and forget a member once it is let go.
impl futures_util::Stream for MailboxReader {
    type Item = Delivery;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        self.poll_recv(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::Outgoing;

    fn message(n: u8) -> Message {
        Message::new(Outgoing::Update(bytes::Bytes::from(vec![n])))
    }

    fn bodies(delivery: Option<Delivery>) -> Vec<u8> {
        match delivery {
            Some(Delivery::Messages(queue)) => queue
                .iter()
                .map(|m| match m.body() {
                    Outgoing::Update(u) => u[0],
                    _ => unreachable!(),
                })
                .collect(),
            other => panic!("expected messages, got {other:?}"),
        }
    }

    #[test]
    fn delivers_everything_queued_at_once_and_in_order() {
        let (tx, mut rx) = mailbox(8);
        assert!(rx.try_recv().is_none());
        for n in 0..3 {
            tx.push(message(n)).expect("room");
        }
        assert_eq!(bodies(rx.try_recv()), vec![0, 1, 2]);
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn full_at_capacity_and_room_again_once_taken() {
        let (tx, mut rx) = mailbox(2);
        tx.push(message(0)).expect("room");
        tx.push(message(1)).expect("room");
        assert_eq!(tx.push(message(2)), Err(Full));
        assert_eq!(bodies(rx.try_recv()), vec![0, 1]);
        tx.push(message(3)).expect("room again");
    }

    #[test]
    fn detach_comes_after_what_was_queued_and_ends_the_stream() {
        let (tx, mut rx) = mailbox(8);
        tx.push(message(0)).expect("room");
        tx.detach(Detach::Deleted);
        tx.detach(Detach::Restart); // the first reason stands
        tx.push(message(1)).expect("dropped, not refused");
        assert_eq!(bodies(rx.try_recv()), vec![0]);
        assert!(matches!(
            rx.try_recv(),
            Some(Delivery::Detached(Detach::Deleted))
        ));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_slow_consumer_loses_its_queue() {
        let (tx, mut rx) = mailbox(8);
        tx.push(message(0)).expect("room");
        tx.detach(Detach::SlowConsumer);
        assert!(matches!(
            rx.try_recv(),
            Some(Delivery::Detached(Detach::SlowConsumer))
        ));
    }

    #[test]
    fn a_room_that_ends_lets_its_members_go() {
        let (tx, mut rx) = mailbox(8);
        drop(tx);
        assert!(matches!(
            rx.try_recv(),
            Some(Delivery::Detached(Detach::StorageFailure))
        ));
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_reader() {
        let (tx, mut rx) = mailbox(8);
        let reader = tokio::spawn(async move {
            match rx.recv().await {
                Delivery::Messages(queue) => queue.len(),
                Delivery::Detached(_) => 0,
            }
        });
        tokio::task::yield_now().await;
        tx.push(message(7)).expect("room");
        assert_eq!(reader.await.expect("reader"), 1);
    }
}
