//! Admission: at most `parallel` requests solve at once, at most `queue` more wait for a
//! slot; a request beyond both is refused at once (429 with Retry-After) instead of
//! queueing without bound.

use super::error::ApiError;
use axum::http::StatusCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bounded queue in front of the engine.
#[derive(Debug)]
pub struct Queue {
    slots: Arc<Semaphore>,
    /// Requests admitted (waiting or solving).
    admitted: AtomicUsize,
    /// Requests waiting for a slot.
    waiting: AtomicUsize,
    capacity: usize,
    parallel: usize,
}

/// A request admitted to the queue: it holds its place until dropped.
#[derive(Debug)]
pub struct Ticket {
    queue: Arc<Queue>,
}

/// A slot to solve in (and the ticket that got it).
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl Queue {
    /// `parallel` solves at once, `queue` more waiting.
    pub fn new(parallel: usize, queue: usize) -> Arc<Queue> {
        Arc::new(Queue {
            slots: Arc::new(Semaphore::new(parallel)),
            admitted: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            capacity: parallel + queue,
            parallel,
        })
    }

    /// A place in the queue, or 429 when it is full.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, ApiError> {
        let prev = self.admitted.fetch_add(1, SeqCst);
        if prev >= self.capacity {
            self.admitted.fetch_sub(1, SeqCst);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!(
                    "the server is busy: {} requests solving and {} waiting, its limit \
                     (--parallel {}, --queue {}); retry later",
                    self.parallel,
                    self.capacity - self.parallel,
                    self.parallel,
                    self.capacity - self.parallel
                ),
            );
            e.retry_after = Some(1);
            return Err(e);
        }
        Ok(Ticket {
            queue: self.clone(),
        })
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    /// Requests solving now.
    pub fn solving(&self) -> usize {
        self.parallel - self.slots.available_permits()
    }
}

impl Ticket {
    /// Wait for a slot (dropping the future gives the place up).
    pub async fn slot(self) -> Slot {
        let q = self.queue.clone();
        q.waiting.fetch_add(1, SeqCst);
        let _undo = Undo(&q.waiting);
        let permit = q
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Slot {
            _permit: permit,
            _ticket: self,
        }
    }
}

struct Undo<'a>(&'a AtomicUsize);

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queue.admitted.fetch_sub(1, SeqCst);
    }
}

/// Sets a request's cancel flag when dropped: when the client goes away, axum drops the
/// handler's future (or the response stream) and with it this guard, and the engine
/// stops that request's branches at its next decode step.
#[derive(Debug)]
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}
