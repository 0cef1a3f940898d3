//! Raft messages between members. A single-member cluster never sends any; the gRPC peer
//! transport arrives with multi-member support (issue 3), until then every peer is unreachable.

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::types::{Member, TypeConfig};

pub struct Network;

pub struct NoPeer {
    target: u64,
}

impl NoPeer {
    fn err<E: std::error::Error>(&self) -> RPCError<u64, Member, E> {
        let e = std::io::Error::other(format!(
            "member {:x}: no peer transport (single-member build)",
            self.target
        ));
        RPCError::Unreachable(Unreachable::new(&e))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NoPeer;

    async fn new_client(&mut self, target: u64, _node: &Member) -> NoPeer {
        NoPeer { target }
    }
}

impl RaftNetwork<TypeConfig> for NoPeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        Err(self.err())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(self.err())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        Err(self.err())
    }
}
