//! Batches concurrent writes into raft entries.
//!
//! openraft 0.9 appends one proposal at a time and waits for its fsync before it takes the
//! next, so one entry per client write would cap writes at one fsync each. The proposer keeps
//! one proposal open; writes that arrive meanwhile queue up and go out together as the next
//! entry (a [`Batch`]) applied in one store transaction, each write keeping its own revision
//! and result. One write alone is proposed at once, as a plain command. (Two or three open
//! proposals measured slower: put, 100 clients, 22.3k and 21.0k/s against 23.1k/s.)
//!
//! The entry carries its waiting writers in memory ([`Writers`]), and the state machine
//! answers them as soon as it has applied it: raft's own answer goes from the state machine
//! through raft's core to the proposer and then to each writer, two task hand-offs more. The
//! proposer answers whoever the apply did not: an entry skipped as already in an installed
//! snapshot or read back from the WAL (no writers in memory then), a write raft refused or
//! failed (not the leader, raft stopped), a proposal raft never answered ([`PROPOSAL_WAIT`]).

use std::fmt;
use std::sync::{Arc, Mutex};

use cairn_proto::stages::{self, Stage};
use cairn_storage::{Command, CommandResponse, StoreError};
use openraft::error::{ClientWriteError, RaftError};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::error::ConsensusError;
use crate::types::{Raft, Request};

/// Most writes in one entry.
const MAX_BATCH: usize = 1000;
/// Most command bytes in one entry (one write alone may be larger): etcd's default request limit,
/// so an entry is never larger than etcd's largest, and the log kept for slow followers
/// (`--experimental-snapshot-catchup-entries` entries) stays within what etcd's could be.
const MAX_BATCH_BYTES: usize = 1_572_864;

/// An entry carrying several encoded `cairn_storage::Command`s. Tag 8 is one `Command` does
/// not use, so a batch and a plain command never read as each other: a plain command decodes
/// as a batch with no commands.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Batch {
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub commands: Vec<Vec<u8>>,
}

/// What one write gets back: the entry's index and its own result.
pub(crate) type Outcome = Result<(u64, CommandResponse), ConsensusError>;

/// The writers waiting for one proposed entry, in the order of its commands. The proposer and
/// the entry share them; whoever takes them first answers them, so each is answered once.
#[derive(Clone, Default)]
pub(crate) struct Writers(Option<Arc<Mutex<Vec<oneshot::Sender<Outcome>>>>>);

impl Writers {
    pub(crate) fn new(waiting: Vec<oneshot::Sender<Outcome>>) -> Writers {
        Writers(Some(Arc::new(Mutex::new(waiting))))
    }

    /// The writers not answered yet; none if someone took them already.
    pub(crate) fn take(&self) -> Vec<oneshot::Sender<Outcome>> {
        match &self.0 {
            Some(w) => std::mem::take(&mut *w.lock().unwrap_or_else(|p| p.into_inner())),
            None => Vec::new(),
        }
    }
}

/// Answers `writers` with the results of entry `index`, one each, in order.
pub(crate) fn answer(
    writers: Vec<oneshot::Sender<Outcome>>,
    index: u64,
    results: impl IntoIterator<Item = Result<CommandResponse, StoreError>>,
) {
    stages::mark(Stage::Answered);
    let mut results = results.into_iter();
    for w in writers {
        let outcome = match results.next() {
            Some(Ok(r)) => Ok((index, r)),
            Some(Err(e)) => Err(ConsensusError::Command(e)),
            None => Err(ConsensusError::Stopped(
                "applied entry returned no result".into(),
            )),
        };
        let _ = w.send(outcome); // the writer may have given up
    }
}

impl fmt::Debug for Writers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writers")
    }
}

/// Not part of the entry's data: two entries equal in everything else are equal.
impl PartialEq for Writers {
    fn eq(&self, _: &Writers) -> bool {
        true
    }
}

impl Eq for Writers {}

struct Pending {
    command: Vec<u8>,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone)]
pub(crate) struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Proposer {
    /// Starts the batching task; it ends when the last `Proposer` is dropped.
    pub fn start(raft: Raft) -> Proposer {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Proposer { queue }
    }

    /// Proposes one encoded command; returns when it is applied on this member.
    pub async fn propose(&self, command: Vec<u8>) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| ConsensusError::Stopped("the proposer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| ConsensusError::Stopped("the proposer has stopped".into()))?
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<Pending>) {
    // a write that did not fit the last batch opens the next one
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        stages::mark(Stage::Proposer);
        // everything that queued while the last proposal was open goes out with `first`
        let mut bytes = first.command.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(p) = rx.try_recv() else { break };
            if bytes + p.command.len() > MAX_BATCH_BYTES {
                carry = Some(p);
                break;
            }
            bytes += p.command.len();
            batch.push(p);
        }
        propose(&raft, batch).await;
    }
}

async fn propose(raft: &Raft, batch: Vec<Pending>) {
    let (mut commands, waiting): (Vec<Vec<u8>>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let command = if commands.len() == 1 {
        commands.swap_remove(0)
    } else {
        Batch { commands }.encode_to_vec()
    };
    let writers = Writers::new(waiting);
    // whoever is still waiting when this ends without raft's answer (the task dropped at
    // shutdown, the wait below given up) is told so at once
    let _left = Unanswered(writers.clone());
    let request = Request {
        command,
        writers: writers.clone(),
    };
    match tokio::time::timeout(PROPOSAL_WAIT, raft.client_write(request)).await {
        // the apply answered the writers unless it skipped the entry or read it from the WAL
        Ok(Ok(resp)) => {
            let left = writers.take();
            if !left.is_empty() {
                answer(left, resp.log_id.index, resp.data.results);
            }
        }
        Ok(Err(e)) => {
            for w in writers.take() {
                let _ = w.send(Err(write_error(&e)));
            }
        }
        Err(_) => tracing::warn!(
            "raft did not answer a proposal within {PROPOSAL_WAIT:?}; its writers are told so and the next writes go on"
        ),
    }
}

/// How long the proposer waits for raft's answer to one proposal before it gives up on it and
/// takes the next writes. openraft 0.9 can leave a proposal unanswered for good (a member that
/// lost leadership and then installs a snapshot not covering its own unapplied entry), and one
/// open proposal at a time would then stop every later write on the member. Far beyond any
/// client's deadline (etcd's request timeout is 7 s), so a slow disk never trips it.
const PROPOSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Answers the writers nobody answered when dropped.
struct Unanswered(Writers);

impl Drop for Unanswered {
    fn drop(&mut self) {
        for w in self.0.take() {
            let _ = w.send(Err(ConsensusError::Stopped(
                "the write was proposed but raft did not answer; its outcome is unknown".into(),
            )));
        }
    }
}

fn write_error(e: &RaftError<u64, ClientWriteError<u64, crate::types::Member>>) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ConsensusError::NotLeader,
        e => ConsensusError::Stopped(e.to_string()),
    }
}

/// The commands an entry's payload carries: a batch's, or the payload itself as one command.
pub(crate) fn commands_of(payload: &[u8]) -> Result<Vec<Command>, prost::DecodeError> {
    let batch = Batch::decode(payload)?;
    if batch.commands.is_empty() {
        return Ok(vec![Command::decode(payload)?]);
    }
    batch
        .commands
        .iter()
        .map(|c| Command::decode(c.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::PutRequest;
    use cairn_storage::Op;

    fn put(k: &str) -> Command {
        Command::from(Op::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        }))
    }

    /// A proposal that ends without raft's answer (its task dropped, the wait given up)
    /// tells its writers at once instead of leaving them to their deadline.
    #[test]
    fn writers_left_unanswered_are_told_when_the_proposal_ends() {
        let (tx, mut rx) = oneshot::channel();
        let writers = Writers::new(vec![tx]);
        drop(Unanswered(writers.clone()));
        assert!(matches!(rx.try_recv(), Ok(Err(ConsensusError::Stopped(_)))));

        let (tx, mut rx) = oneshot::channel();
        let writers = Writers::new(vec![tx]);
        let left = Unanswered(writers.clone());
        answer(writers.take(), 7, []);
        drop(left);
        assert!(
            matches!(rx.try_recv(), Ok(Err(ConsensusError::Stopped(m))) if m.contains("no result")),
            "answered once, by whoever took the writer first"
        );
    }

    #[test]
    fn a_plain_command_and_a_batch_read_back_as_written() {
        let one = put("a").encode_to_vec();
        assert_eq!(commands_of(&one).unwrap(), [put("a")]);
        let batch = Batch {
            commands: vec![put("a").encode_to_vec(), put("b").encode_to_vec()],
        }
        .encode_to_vec();
        assert_eq!(commands_of(&batch).unwrap(), [put("a"), put("b")]);
        assert!(commands_of(&[0xff, 0xff]).is_err());
    }
}
