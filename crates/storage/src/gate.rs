//! How the store's background threads (the committer, watch replay) hold it: only while they
//! work, and through a [`Gate`]. Closing the gate waits for a thread at work and keeps them
//! all from taking the store again, so whoever closes the store knows that the last handle is
//! theirs, and that dropping it closes the database on their own thread (a reopen in the same
//! process then finds the file free).

use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, Weak};

use crate::locks::lock;

#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    holders: usize,
}

impl Gate {
    /// The store, held until the guard is dropped; `None` once the gate is closed or the
    /// store gone.
    pub fn hold<'g, T>(&'g self, store: &Weak<T>) -> Option<Held<'g, T>> {
        let mut g = lock(&self.state);
        if g.closed {
            return None;
        }
        let store = store.upgrade()?;
        g.holders += 1;
        Some(Held {
            gate: self,
            store: Some(store),
        })
    }

    /// Closes the gate without waiting (safe on a holding thread).
    pub fn close(&self) {
        lock(&self.state).closed = true;
    }

    /// Closes the gate and waits until no background thread holds the store. Must not be
    /// called while holding a [`Held`] (it would wait for itself).
    pub fn close_and_wait(&self) {
        let mut g = lock(&self.state);
        g.closed = true;
        while g.holders > 0 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A background thread's hold on the store.
pub(crate) struct Held<'g, T> {
    gate: &'g Gate,
    store: Option<Arc<T>>,
}

impl<T> Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.store.as_deref().expect("held until dropped")
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        // the store first: if this was its last handle, it closes before a waiter goes on
        drop(self.store.take());
        let mut g = lock(&self.gate.state);
        g.holders -= 1;
        self.gate.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::temp_store;

    #[test]
    fn closing_waits_for_the_holder_and_then_refuses_everyone() {
        let (_dir, store) = temp_store();
        let gate = Arc::new(Gate::default());
        let weak = Arc::downgrade(&store);
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let worker = {
            let (gate, weak) = (gate.clone(), weak.clone());
            std::thread::spawn(move || {
                let held = gate.hold(&weak).expect("open gate");
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                drop(held);
            })
        };
        held_rx.recv().unwrap();
        assert_eq!(Arc::strong_count(&store), 2);
        let closer = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.close_and_wait())
        };
        // the closer cannot finish while the worker holds the store
        std::thread::sleep(Duration::from_millis(50));
        assert!(!closer.is_finished());
        release_tx.send(()).unwrap();
        worker.join().unwrap();
        closer.join().unwrap();
        assert_eq!(Arc::strong_count(&store), 1, "nobody else holds it");
        assert!(gate.hold(&weak).is_none(), "closed for good");
    }
}
