//! A cluster's connection that long-running callers share (the mirror): the first
//! [`Pool::get`] connects, a failed call [`Pool::invalidate`]s it, and the next `get` moves
//! on to the next endpoint.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dial::Dialer;
use crate::error::ClientError;
use crate::session::Client;

pub struct Pool {
    dialer: Dialer,
    current: Mutex<Option<Client>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(dialer: Dialer) -> Pool {
        Pool {
            dialer,
            current: Mutex::new(None),
            next: AtomicUsize::new(0),
        }
    }

    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// The current connection, or a new one: endpoints are tried in turn from the one after
    /// the last that failed. A streaming connection (unary calls take their deadline from
    /// [`Client::request`]).
    pub async fn get(&self) -> Result<Client, ClientError> {
        // A std mutex: held only to copy or store the handle, never across an await.
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let endpoints = self.dialer.endpoints();
        let n = endpoints.len();
        let mut why = Vec::new();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            match self.dialer.connect_streaming(&endpoints[i]).await {
                Ok(c) => {
                    // stay on this endpoint until it fails
                    self.next.store(i, Ordering::Relaxed);
                    *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                    return Ok(c);
                }
                Err(ClientError::Connect { endpoint, reason }) => {
                    why.push(format!("{endpoint}: {reason}"))
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Connect {
            endpoint: endpoints.join(","),
            reason: why.join("; "),
        })
    }

    /// Drops the connection after a failure; the next `get` moves to the next endpoint.
    pub fn invalidate(&self) {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.take().is_some() {
            self.next.fetch_add(1, Ordering::Relaxed);
        }
    }
}
