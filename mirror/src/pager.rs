//! Reading a key range page by page at one revision (the first page's, when none is given).
//! The page size adapts to the values so that a response stays near a few MiB.

use std::collections::VecDeque;

use cairn_proto::etcdserverpb::RangeRequest;
use cairn_proto::mvccpb::KeyValue;

use crate::client::Client;
use crate::error::Error;

const TARGET_PAGE_BYTES: usize = 4 * 1024 * 1024;
const MIN_PAGE: i64 = 64;
const MAX_PAGE: i64 = 10_000;

pub struct Pager {
    client: Client,
    next_key: Vec<u8>,
    end: Vec<u8>,
    /// 0 until the first page fixes it.
    pub revision: i64,
    keys_only: bool,
    page: i64,
    buf: VecDeque<KeyValue>,
    done: bool,
}

impl Pager {
    pub fn new(
        client: Client,
        start: Vec<u8>,
        end: Vec<u8>,
        revision: i64,
        keys_only: bool,
    ) -> Self {
        Pager {
            client,
            next_key: start,
            end,
            revision,
            keys_only,
            page: 1000,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// The next page, or `None` at the end of the range.
    pub async fn next_page(&mut self) -> Result<Option<Vec<KeyValue>>, Error> {
        if !self.buf.is_empty() {
            return Ok(Some(self.buf.drain(..).collect()));
        }
        if self.done {
            return Ok(None);
        }
        let r = self
            .client
            .range(RangeRequest {
                key: self.next_key.clone(),
                range_end: self.end.clone(),
                limit: self.page,
                revision: self.revision,
                keys_only: self.keys_only,
                ..Default::default()
            })
            .await?;
        if self.revision == 0 {
            self.revision = r.header.as_ref().map(|h| h.revision).unwrap_or(0);
        }
        match r.kvs.last() {
            Some(last) if r.more => {
                let mut k = last.key.clone();
                k.push(0);
                self.next_key = k;
            }
            _ => self.done = true,
        }
        if !self.keys_only && !r.kvs.is_empty() {
            let bytes: usize = r
                .kvs
                .iter()
                .map(|kv| kv.key.len() + kv.value.len() + 32)
                .sum();
            let avg = (bytes / r.kvs.len()).max(1);
            self.page = ((TARGET_PAGE_BYTES / avg) as i64).clamp(MIN_PAGE, MAX_PAGE);
        } else if self.keys_only {
            self.page = MAX_PAGE;
        }
        if r.kvs.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(r.kvs))
    }

    /// The next key-value, or `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<KeyValue>, Error> {
        if self.buf.is_empty() {
            match self.next_page().await? {
                Some(p) => self.buf.extend(p),
                None => return Ok(None),
            }
        }
        Ok(self.buf.pop_front())
    }
}
