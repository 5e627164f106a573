//! The ledger protocol as a finite state machine: one step key, its ledger item, the service
//! that holds its resources, the event bus, and four actors (two deliveries, the reconciler,
//! an operator) whose every step is one ledger write, one service call or one `PutEvents`.
//!
//! Every write is a conditional update applied atomically, as DynamoDB applies an UpdateItem;
//! between two steps of an actor any other actor or the environment may act. Faults (a crash
//! before any step, a write applied whose response is lost, a `PutEvents` that fails or whose
//! success is lost, a holder that stalls past its lease) and environment events (a create or
//! update the service refuses, a resource that fails, is deleted or is changed behind the
//! project's back) are bounded by budgets, so the state space is finite and explored
//! exhaustively.
//!
//! Each fenced write is checked twice: by its modelled condition (what the code's expression
//! builder conditions on) and by the basis its writer acted on (the lease it holds, the
//! generation and resource it read). A write applied whose basis no longer holds is a stale
//! write; the property "no stale write applied" says none is ever applied.

use std::fmt::Debug;

use stateright::{Model, Property};

/// Index of the first delivery.
pub const D1: usize = 0;
/// Index of the second delivery.
pub const D2: usize = 1;
/// Index of the reconciler.
pub const REC: usize = 2;
/// Index of the operator (`onboarding retry`, `sweep --repair`).
pub const OPS: usize = 3;
pub const ACTORS: usize = 4;

/// A field's value altered behind the project's back.
pub const FOREIGN: u8 = 9;

/// Per field, the revision of the request that set it (0: unset; [`FOREIGN`]: altered out
/// of band). Two fields, so per-field last-writer-wins is visible.
pub type Fields = [u8; 2];

/// What each delivery's request asks: its revision and the fields it specifies. The older
/// request specifies both fields, the newer only the second: whatever order they land in,
/// the desired state is `[1, 2]`.
pub const REQUESTS: [(u8, [bool; 2]); 2] = [(1, [true, true]), (2, [false, true])];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    InProgress,
    Created,
    Ready,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ready,
    Updated,
    Failed,
    Refused,
    Drift,
}

/// An outcome, as recorded in the outbox and as announced: the item's incarnation (its
/// salt), the generation, what happened and the desired version it concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Outcome {
    pub salt: u8,
    pub gen: u8,
    pub kind: Kind,
    pub version: u8,
}

/// The claim's lease: its owner (the attempt that took it; unique within a generation of an
/// item) and whether its time is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub owner: u8,
    pub live: bool,
}

/// An update's lease, for the desired version it brings the resource to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpdateLease {
    pub owner: u8,
    pub version: u8,
    pub live: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Finding {
    Gone,
    Changed,
}

/// The ledger item of the step key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    /// Fixed when the item is created: tokens are f(salt, key, generation).
    pub salt: u8,
    pub status: Status,
    pub gen: u8,
    pub attempt: u8,
    pub lease: Option<Lease>,
    pub create_sent: bool,
    pub arn: Option<u8>,
    /// Per-field last-writer-wins map of what requests asked.
    pub desired: Fields,
    pub desired_version: u8,
    /// The fields the resource was last brought to, and that version.
    pub state: Fields,
    pub applied_version: u8,
    pub update: Option<UpdateLease>,
    pub update_attempt: u8,
    pub drift: Option<Finding>,
    /// Outcomes recorded and not yet marked announced (sorted): the attention index holds
    /// the item while this is not empty.
    pub outbox: Vec<Outcome>,
}

impl Item {
    pub fn pending_update(&self) -> bool {
        self.status == Status::Ready && self.applied_version < self.desired_version
    }

    fn lease_free(&self) -> bool {
        self.lease.is_none_or(|l| !l.live)
    }

    fn update_free(&self) -> bool {
        self.update.is_none_or(|u| !u.live)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceStatus {
    Pending,
    Active,
    Failed,
}

/// A resource on the service, made by the create with `token` (salt, generation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    pub token: (u8, u8),
    pub fields: Fields,
    pub status: ResourceStatus,
    pub alive: bool,
}

/// A holder of the claim: the lease it took and what it creates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Holder {
    pub salt: u8,
    pub gen: u8,
    pub attempt: u8,
    pub fields: Fields,
    pub version: u8,
}

/// A holder of an update lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpdateHolder {
    pub salt: u8,
    pub gen: u8,
    pub owner: u8,
    pub version: u8,
    pub fields: Fields,
    pub arn: u8,
}

/// What an audit read of a `READY` step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seen {
    pub salt: u8,
    pub gen: u8,
    pub arn: u8,
    pub applied_version: u8,
    pub state: Fields,
    pub drift: Option<Finding>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    Applied,
    Refused,
    Released,
}

/// Where an actor is in its program: the step it takes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    Idle,
    Claim,
    RecordDesired,
    Create(Holder),
    Complete(Holder, u8),
    FailPermanent(Holder),
    Release(Holder),
    Settle { salt: u8, gen: u8, arn: u8 },
    ClaimUpdate { salt: u8, gen: u8 },
    Update(UpdateHolder),
    EndUpdate(UpdateHolder, End),
    Announce(Outcome),
    Mark(Outcome),
    Audit(Seen),
    RecordAudit(Seen, Finding),
    RepairRead(Seen),
    Repair(Seen),
    Retry { salt: u8, gen: u8 },
}

/// The model's writes, by the name of the step that makes each (see [`Pc::write`]).
pub const WRITE_STEPS: &[&str] = &[
    "claim",
    "record_desired",
    "complete",
    "fail_permanent",
    "release",
    "promote",
    "fail_created",
    "claim_update",
    "end_update",
    "mark_announced",
    "record_audit",
    "repair",
    "retry",
];

impl Pc {
    /// The writes this step may make (empty: a service call, a read, `PutEvents`).
    pub fn write(&self) -> &'static [&'static str] {
        match self {
            Pc::Idle | Pc::Create(_) | Pc::Update(_) | Pc::Announce(_) => &[],
            Pc::Audit(_) | Pc::RepairRead(_) => &[],
            Pc::Claim => &["claim"],
            Pc::RecordDesired => &["record_desired"],
            Pc::Complete(..) => &["complete"],
            Pc::FailPermanent(_) => &["fail_permanent"],
            Pc::Release(_) => &["release"],
            Pc::Settle { .. } => &["promote", "fail_created"],
            Pc::ClaimUpdate { .. } => &["claim_update"],
            Pc::EndUpdate(..) => &["end_update"],
            Pc::Mark(_) => &["mark_announced"],
            Pc::RecordAudit(..) => &["record_audit"],
            Pc::Repair(_) => &["repair"],
            Pc::Retry { .. } => &["retry"],
        }
    }
}

/// What is known about the run that no actor can see: what was recorded, what consumers
/// received, and whether a property was broken on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Every outcome ever recorded (sorted).
    pub recorded: Vec<Outcome>,
    /// Every outcome consumers received at least once (sorted).
    pub published: Vec<Outcome>,
    /// An event published for an outcome not recorded.
    pub bogus: bool,
    /// The first write applied whose basis no longer held.
    pub stale: Option<&'static str>,
    /// A `Ready` recorded twice for one generation.
    pub double_ready: bool,
    /// A request acknowledged whose fields the ledger does not hold.
    pub lost_request: bool,
    /// A service call made by a holder whose lease had ended.
    pub acted_after_lease: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub item: Option<Item>,
    /// Items created so far: the next item's salt.
    pub incarnations: u8,
    pub resources: Vec<Resource>,
    pub pcs: [Pc; ACTORS],
    /// Each delivery's message is still in the queue (not yet acknowledged).
    pub messages: [bool; 2],
    pub faults: u8,
    pub env: u8,
    pub ghost: Ghost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateResult {
    /// Created (or the same resource for the same token, or adopted: another instance
    /// exists in the account).
    Ok,
    /// Made, but the response is lost: the holder releases, a create maybe sent.
    Lost,
    /// Refused for good.
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateResult {
    Ok,
    /// Landed, response lost: the holder stops, its lease left to expire.
    Lost,
    /// Retryable: the holder releases its lease.
    Released,
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PutResult {
    Ok,
    /// Not published; the caller sees the error.
    Failed,
    /// Published; the caller sees an error (or crashes before marking).
    Lost,
}

/// One transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A delivery receives its message.
    Deliver(usize),
    /// The reconciler takes an `IN_PROGRESS` step whose lease expired.
    Redrive,
    /// The reconciler checks a `CREATED` step.
    Resettle,
    /// The reconciler takes a pending update.
    Reconverge,
    /// The reconciler announces an outcome recorded and not marked.
    Reannounce(Outcome),
    /// The reconciler (`REC`) or `sweep --repair` (`OPS`) audits a `READY` step.
    StartAudit(usize),
    /// An operator's `onboarding retry` of a `FAILED` step.
    StartRetry,
    /// The actor takes the step its program counter names; `lost`: a write applied whose
    /// response is lost (the actor gives up, its message is redelivered).
    Step {
        actor: usize,
        lost: bool,
    },
    Create {
        actor: usize,
        result: CreateResult,
    },
    Update {
        actor: usize,
        result: UpdateResult,
    },
    Put {
        actor: usize,
        result: PutResult,
    },
    /// A holder whose lease ended stops before its next service call (its work is bounded
    /// by the lease's end).
    Cut(usize),
    Crash(usize),
    ExpireLease,
    ExpireUpdateLease,
    /// DynamoDB's TTL deletes a `FAILED` item.
    Ttl,
    Activate(u8),
    FailResource(u8),
    Delete(u8),
    Alter(u8),
}

impl Action {
    fn actor(&self) -> Option<usize> {
        match *self {
            Action::Deliver(a)
            | Action::StartAudit(a)
            | Action::Cut(a)
            | Action::Crash(a)
            | Action::Step { actor: a, .. }
            | Action::Create { actor: a, .. }
            | Action::Update { actor: a, .. }
            | Action::Put { actor: a, .. } => Some(a),
            Action::Redrive | Action::Resettle | Action::Reconverge | Action::Reannounce(_) => {
                Some(REC)
            }
            Action::StartRetry => Some(OPS),
            _ => None,
        }
    }

    /// No fault and no environment event: what a run of the reconciler without faults takes.
    fn clean(&self) -> bool {
        match *self {
            Action::Step { lost, .. } => !lost,
            Action::Create { result, .. } => result == CreateResult::Ok,
            Action::Update { result, .. } => result == UpdateResult::Ok,
            Action::Put { result, .. } => result == PutResult::Ok,
            Action::Crash(_) => false,
            _ => self.actor().is_some(),
        }
    }
}

/// The bounds and switches of one check.
#[derive(Clone, Debug)]
pub struct LedgerModel {
    /// Faults (crashes, lost responses, failed `PutEvents`, stalls past a lease).
    pub max_faults: u8,
    /// Environment events (refusals, failed, deleted or changed resources).
    pub max_env: u8,
    /// Generations an item may reach (retries and repairs start new ones).
    pub max_gen: u8,
    /// The service allows one instance per account (IAM Identity Center): a create with a
    /// new token while one exists answers "exists", and the holder adopts it.
    pub one_per_account: bool,
    /// The operator retries `FAILED` steps and runs `sweep --repair`.
    pub operator: bool,
}

impl Default for LedgerModel {
    fn default() -> Self {
        LedgerModel {
            max_faults: 1,
            max_env: 1,
            max_gen: 1,
            one_per_account: true,
            operator: true,
        }
    }
}

fn insert(set: &mut Vec<Outcome>, o: Outcome) -> bool {
    match set.binary_search(&o) {
        Ok(_) => false,
        Err(i) => {
            set.insert(i, o);
            true
        }
    }
}

fn remove(set: &mut Vec<Outcome>, o: &Outcome) {
    if let Ok(i) = set.binary_search(o) {
        set.remove(i);
    }
}

impl State {
    fn item(&self) -> &Item {
        self.item.as_ref().expect("the step reads an item")
    }

    /// Records `o` unannounced in the outbox (the same write as the outcome).
    fn record(&mut self, o: Outcome) {
        let again = |r: &Outcome| (r.salt, r.gen, r.kind) == (o.salt, o.gen, Kind::Ready);
        if o.kind == Kind::Ready && self.ghost.recorded.iter().any(again) {
            self.ghost.double_ready = true;
        }
        insert(&mut self.ghost.recorded, o);
        if let Some(item) = self.item.as_mut() {
            insert(&mut item.outbox, o);
        }
    }

    fn stale(&mut self, write: &'static str) {
        self.ghost.stale.get_or_insert(write);
    }

    /// The actor's program ends; a delivery acknowledges its message (`ack`) or leaves it to
    /// be delivered again.
    fn finish(&mut self, actor: usize, ack: bool) {
        self.pcs[actor] = Pc::Idle;
        if ack && actor < 2 {
            self.messages[actor] = false;
            let (revision, mask) = REQUESTS[actor];
            let kept = self
                .item
                .as_ref()
                .is_some_and(|item| (0..2).all(|f| !mask[f] || item.desired[f] >= revision));
            if !kept {
                self.ghost.lost_request = true;
            }
        }
    }

    /// A delivery acknowledges its message answered by a failure (recorded and announced):
    /// what it asked ends with the step's generation.
    fn finish_failed(&mut self, actor: usize) {
        self.pcs[actor] = Pc::Idle;
        if actor < 2 {
            self.messages[actor] = false;
        }
    }

    /// Whether some actor still works under the claim lease `owner` of the current item.
    fn holds_lease(&self, item: &Item, owner: u8) -> bool {
        self.pcs.iter().any(|pc| match pc {
            Pc::Create(h) | Pc::Complete(h, _) | Pc::FailPermanent(h) | Pc::Release(h) => {
                (h.salt, h.gen, h.attempt) == (item.salt, item.gen, owner)
            }
            _ => false,
        })
    }

    fn holds_update(&self, item: &Item, owner: u8) -> bool {
        self.pcs.iter().any(|pc| match pc {
            Pc::Update(u) | Pc::EndUpdate(u, _) => {
                (u.salt, u.gen, u.owner) == (item.salt, item.gen, owner)
            }
            _ => false,
        })
    }
}

/// The basis of a holder's write: the claim it holds is still the item's.
fn held(item: &Item, h: &Holder) -> bool {
    item.status == Status::InProgress
        && (item.salt, item.gen) == (h.salt, h.gen)
        && item.lease.is_some_and(|l| l.owner == h.attempt)
}

/// Merges a request's fields into the desired map, field by field, newer revision wins.
/// `desired_version` bumps if anything changed.
fn record_fields(item: &mut Item, actor: usize) {
    if actor >= 2 {
        return;
    }
    let (revision, mask) = REQUESTS[actor];
    let mut changed = false;
    for (value, asked) in item.desired.iter_mut().zip(mask) {
        if asked && *value < revision {
            *value = revision;
            changed = true;
        }
    }
    if changed {
        item.desired_version += 1;
    }
}

impl LedgerModel {
    /// The enabled actions of one actor at its program counter.
    fn actor_actions(&self, s: &State, a: usize, out: &mut Vec<Action>) {
        let fault = s.faults < self.max_faults;
        let env = s.env < self.max_env;
        let step = |out: &mut Vec<Action>, write: bool| {
            out.push(Action::Step {
                actor: a,
                lost: false,
            });
            if write && fault {
                out.push(Action::Step {
                    actor: a,
                    lost: true,
                });
            }
        };
        match s.pcs[a] {
            Pc::Idle => {
                if a < 2 {
                    if s.messages[a] {
                        out.push(Action::Deliver(a));
                    }
                    return;
                }
                let Some(item) = &s.item else { return };
                if a == REC {
                    for o in &item.outbox {
                        out.push(Action::Reannounce(*o));
                    }
                    match item.status {
                        Status::InProgress if item.lease_free() => out.push(Action::Redrive),
                        Status::Created => out.push(Action::Resettle),
                        Status::Ready if item.pending_update() && item.update_free() => {
                            out.push(Action::Reconverge)
                        }
                        _ => {}
                    }
                }
                if a == OPS && !self.operator {
                    return;
                }
                if a == OPS && item.status == Status::Failed && item.gen < self.max_gen {
                    out.push(Action::StartRetry);
                }
                // An audit that finds nothing writes nothing: audits start where there is
                // something to find (they may still read a step that moves on meanwhile).
                if item.status == Status::Ready && item.update_free() && self.audit_finds(s) {
                    out.push(Action::StartAudit(a));
                }
            }
            Pc::Create(h) => {
                if self.lease_live(s, &h) {
                    out.push(Action::Create {
                        actor: a,
                        result: CreateResult::Ok,
                    });
                    if fault {
                        out.push(Action::Create {
                            actor: a,
                            result: CreateResult::Lost,
                        });
                    }
                    if env {
                        out.push(Action::Create {
                            actor: a,
                            result: CreateResult::Refused,
                        });
                    }
                } else {
                    out.push(Action::Cut(a));
                }
            }
            Pc::Update(u) => {
                if self.update_live(s, &u) {
                    out.push(Action::Update {
                        actor: a,
                        result: UpdateResult::Ok,
                    });
                    if fault {
                        out.push(Action::Update {
                            actor: a,
                            result: UpdateResult::Lost,
                        });
                        out.push(Action::Update {
                            actor: a,
                            result: UpdateResult::Released,
                        });
                    }
                    if env {
                        out.push(Action::Update {
                            actor: a,
                            result: UpdateResult::Refused,
                        });
                    }
                } else {
                    out.push(Action::Cut(a));
                }
            }
            Pc::Announce(_) => {
                out.push(Action::Put {
                    actor: a,
                    result: PutResult::Ok,
                });
                if fault {
                    out.push(Action::Put {
                        actor: a,
                        result: PutResult::Failed,
                    });
                    out.push(Action::Put {
                        actor: a,
                        result: PutResult::Lost,
                    });
                }
            }
            // Reads and read-then-decide steps.
            Pc::Audit(_) | Pc::RepairRead(_) => step(out, false),
            // Writes.
            _ => step(out, true),
        }
        if s.pcs[a] != Pc::Idle && fault {
            out.push(Action::Crash(a));
        }
    }

    fn lease_live(&self, s: &State, h: &Holder) -> bool {
        s.item.as_ref().is_some_and(|item| {
            (item.salt, item.gen) == (h.salt, h.gen)
                && item.lease
                    == Some(Lease {
                        owner: h.attempt,
                        live: true,
                    })
        })
    }

    fn update_live(&self, s: &State, u: &UpdateHolder) -> bool {
        s.item.as_ref().is_some_and(|item| {
            (item.salt, item.gen) == (u.salt, u.gen)
                && item.update.is_some_and(|l| l.owner == u.owner && l.live)
        })
    }

    /// The service's answer to a create with `token`: the same resource for the same token;
    /// with one instance per account, the existing instance (adopted, brought to `fields`);
    /// else a new resource.
    fn create(&self, s: &mut State, token: (u8, u8), fields: Fields) -> u8 {
        if let Some(i) = s.resources.iter().position(|r| r.token == token) {
            return i as u8;
        }
        if self.one_per_account {
            if let Some(i) = s.resources.iter().position(|r| r.alive) {
                s.resources[i].fields = fields;
                return i as u8;
            }
        }
        s.resources.push(Resource {
            token,
            fields,
            status: ResourceStatus::Pending,
            alive: true,
        });
        (s.resources.len() - 1) as u8
    }

    /// Takes the actor's step at its program counter (one write, one read, or a decision).
    fn step(&self, s: &mut State, a: usize) {
        match s.pcs[a] {
            Pc::Claim => self.claim(s, a),
            Pc::RecordDesired => {
                // A request whose claim was refused: its fields are recorded (newer per field
                // wins), then it goes on by the status it finds.
                let Some(item) = s.item.as_mut() else {
                    return s.finish(a, false);
                };
                record_fields(item, a);
                let (salt, gen) = (item.salt, item.gen);
                match item.status {
                    Status::InProgress => s.finish(a, false),
                    Status::Created => {
                        let arn = item.arn.expect("CREATED has a resource");
                        s.pcs[a] = Pc::Settle { salt, gen, arn };
                    }
                    Status::Ready => s.pcs[a] = Pc::ClaimUpdate { salt, gen },
                    Status::Failed => s.finish_failed(a),
                }
            }
            Pc::Complete(h, arn) => {
                let res = &s.resources[arn as usize];
                let to = match (res.alive, res.status) {
                    (true, ResourceStatus::Active) => Status::Ready,
                    (true, ResourceStatus::Pending) => Status::Created,
                    _ => {
                        s.pcs[a] = Pc::FailPermanent(h);
                        return;
                    }
                };
                // complete: IN_PROGRESS held by this owner.
                let cond = s.item.as_ref().is_some_and(|item| {
                    item.status == Status::InProgress
                        && (item.salt, item.gen) == (h.salt, h.gen)
                        && item.lease.is_some_and(|l| l.owner == h.attempt)
                });
                if !cond {
                    return s.finish(a, false);
                }
                if !held(s.item(), &h) {
                    s.stale("complete");
                }
                let item = s.item.as_mut().expect("checked");
                item.status = to;
                item.arn = Some(arn);
                item.state = h.fields;
                item.applied_version = h.version;
                item.lease = None;
                if to == Status::Ready {
                    let o = Outcome {
                        salt: h.salt,
                        gen: h.gen,
                        kind: Kind::Ready,
                        version: h.version,
                    };
                    s.record(o);
                    s.pcs[a] = Pc::Announce(o);
                } else {
                    s.finish(a, false);
                }
            }
            Pc::FailPermanent(h) => {
                let cond = s.item.as_ref().is_some_and(|item| {
                    item.status == Status::InProgress
                        && (item.salt, item.gen) == (h.salt, h.gen)
                        && item.lease.is_some_and(|l| l.owner == h.attempt)
                });
                if !cond {
                    return s.finish(a, false);
                }
                if !held(s.item(), &h) {
                    s.stale("fail_permanent");
                }
                let item = s.item.as_mut().expect("checked");
                item.status = Status::Failed;
                item.lease = None;
                let o = Outcome {
                    salt: h.salt,
                    gen: h.gen,
                    kind: Kind::Failed,
                    version: item.desired_version,
                };
                s.record(o);
                s.pcs[a] = Pc::Announce(o);
            }
            Pc::Release(h) => {
                let cond = s.item.as_ref().is_some_and(|item| {
                    item.status == Status::InProgress
                        && (item.salt, item.gen) == (h.salt, h.gen)
                        && item.lease.is_some_and(|l| l.owner == h.attempt)
                });
                if cond {
                    if !held(s.item(), &h) {
                        s.stale("release");
                    }
                    let item = s.item.as_mut().expect("checked");
                    item.lease = Some(Lease {
                        owner: h.attempt,
                        live: false,
                    });
                    item.create_sent = true;
                }
                s.finish(a, false);
            }
            Pc::Settle { salt, gen, arn } => {
                let res = &s.resources[arn as usize];
                let (to, kind) = match (res.alive, res.status) {
                    (true, ResourceStatus::Active) => (Status::Ready, Kind::Ready),
                    (true, ResourceStatus::Pending) => return s.finish(a, false),
                    _ => (Status::Failed, Kind::Failed),
                };
                // promote / fail_created: CREATED in the generation, with the resource read.
                let cond = s.item.as_ref().is_some_and(|item| {
                    item.status == Status::Created
                        && (item.salt, item.gen, item.arn) == (salt, gen, Some(arn))
                });
                if !cond {
                    return s.finish(a, false);
                }
                let item = s.item();
                if item.status != Status::Created || item.arn != Some(arn) || item.gen != gen {
                    s.stale(if to == Status::Ready {
                        "promote"
                    } else {
                        "fail_created"
                    });
                }
                let item = s.item.as_mut().expect("checked");
                item.status = to;
                let o = Outcome {
                    salt,
                    gen,
                    kind,
                    version: if to == Status::Ready {
                        item.applied_version
                    } else {
                        item.desired_version
                    },
                };
                s.record(o);
                s.pcs[a] = Pc::Announce(o);
            }
            Pc::ClaimUpdate { salt, gen } => {
                let Some(item) = s.item.as_mut() else {
                    return s.finish(a, false);
                };
                let same = item.status == Status::Ready && (item.salt, item.gen) == (salt, gen);
                if !(same && item.pending_update()) {
                    // Nothing to apply (or the step moved on): acknowledged.
                    return s.finish(a, true);
                }
                if !item.update_free() {
                    return s.finish(a, false);
                }
                item.update_attempt += 1;
                let lease = UpdateLease {
                    owner: item.update_attempt,
                    version: item.desired_version,
                    live: true,
                };
                item.update = Some(lease);
                s.pcs[a] = Pc::Update(UpdateHolder {
                    salt,
                    gen,
                    owner: lease.owner,
                    version: lease.version,
                    fields: item.desired,
                    arn: item.arn.expect("READY has a resource"),
                });
            }
            Pc::EndUpdate(u, end) => {
                let Some(item) = s.item.as_ref() else {
                    return s.finish(a, false);
                };
                // end_update: fenced on the update's owner and the generation.
                let cond = item.status == Status::Ready
                    && item.salt == u.salt
                    && item.gen == u.gen
                    && item.update.is_some_and(|l| l.owner == u.owner);
                let basis = item.status == Status::Ready
                    && (item.salt, item.gen) == (u.salt, u.gen)
                    && item.update.is_some_and(|l| l.owner == u.owner);
                if !cond {
                    return s.finish(a, false);
                }
                if !basis {
                    s.stale("end_update");
                }
                let item = s.item.as_mut().expect("checked");
                let kind = match end {
                    End::Released => {
                        item.update = None;
                        return s.finish(a, false);
                    }
                    End::Applied => {
                        item.state = u.fields;
                        if item.drift == Some(Finding::Changed) {
                            item.drift = None;
                        }
                        Kind::Updated
                    }
                    End::Refused => Kind::Refused,
                };
                item.applied_version = u.version;
                item.update = None;
                let o = Outcome {
                    salt: u.salt,
                    gen: u.gen,
                    kind,
                    version: u.version,
                };
                s.record(o);
                s.pcs[a] = Pc::Announce(o);
            }
            Pc::Mark(o) => {
                if let Some(item) = s.item.as_mut() {
                    remove(&mut item.outbox, &o);
                }
                if o.kind == Kind::Failed {
                    s.finish_failed(a);
                } else {
                    s.finish(a, true);
                }
            }
            Pc::Audit(seen) => {
                let res = &s.resources[seen.arn as usize];
                let finding = if !res.alive {
                    Finding::Gone
                } else if res.status == ResourceStatus::Active && res.fields != seen.state {
                    Finding::Changed
                } else {
                    return s.finish(a, false);
                };
                if finding == Finding::Gone && seen.drift == Some(Finding::Gone) {
                    // Recorded (and announced, or in the outbox) by an earlier audit.
                    if seen.gen < self.max_gen {
                        s.pcs[a] = Pc::RepairRead(seen);
                    } else {
                        s.finish(a, false);
                    }
                } else {
                    s.pcs[a] = Pc::RecordAudit(seen, finding);
                }
            }
            Pc::RecordAudit(seen, finding) => {
                let Some(item) = s.item.as_mut() else {
                    return s.finish(a, false);
                };
                // record_audit: READY in the generation and at the applied version read, no
                // update begun since.
                let cond = item.status == Status::Ready
                    && (item.salt, item.gen) == (seen.salt, seen.gen)
                    && item.applied_version == seen.applied_version
                    && item.update.is_none();
                if !cond {
                    return s.finish(a, false);
                }
                if item.gen != seen.gen
                    || item.update.is_some()
                    || item.applied_version != seen.applied_version
                {
                    s.ghost.stale.get_or_insert("record_audit");
                }
                item.drift = Some(finding);
                if finding == Finding::Changed {
                    // Repairing drift: the desired state is applied again.
                    item.desired_version += 1;
                }
                let o = Outcome {
                    salt: seen.salt,
                    gen: seen.gen,
                    kind: Kind::Drift,
                    version: item.desired_version,
                };
                s.record(o);
                s.pcs[a] = Pc::Announce(o);
            }
            Pc::RepairRead(seen) => {
                // The repairer reads the step again: still the generation and resource the
                // audit saw?
                let same = s.item.as_ref().is_some_and(|item| {
                    item.status == Status::Ready
                        && (item.salt, item.gen, item.arn) == (seen.salt, seen.gen, Some(seen.arn))
                });
                if same {
                    s.pcs[a] = Pc::Repair(seen);
                } else {
                    s.finish(a, false);
                }
            }
            Pc::Repair(seen) => {
                let Some(item) = s.item.as_ref() else {
                    return s.finish(a, false);
                };
                // repair (the retry builder): READY, fenced on the generation the audit saw.
                let cond =
                    item.status == Status::Ready && item.salt == seen.salt && item.gen == seen.gen;
                let basis = item.status == Status::Ready
                    && (item.salt, item.gen, item.arn) == (seen.salt, seen.gen, Some(seen.arn));
                if !cond {
                    return s.finish(a, false);
                }
                if !basis {
                    s.stale("repair");
                }
                let item = s.item.as_mut().expect("checked");
                new_generation(item);
                item.desired_version += 1;
                s.finish(a, false);
            }
            Pc::Retry { salt, gen } => {
                let Some(item) = s.item.as_mut() else {
                    return s.finish(a, false);
                };
                let cond = item.status == Status::Failed && (item.salt, item.gen) == (salt, gen);
                if cond {
                    if item.status != Status::Failed || item.gen != gen {
                        s.ghost.stale.get_or_insert("retry");
                    }
                    new_generation(item);
                }
                s.finish(a, false);
            }
            Pc::Idle | Pc::Create(_) | Pc::Update(_) | Pc::Announce(_) => {
                unreachable!("not a step")
            }
        }
    }

    /// The claim: creates the item (a new salt) or takes over an `IN_PROGRESS` item whose
    /// lease ended; a delivery's request records its fields in the same write.
    fn claim(&self, s: &mut State, a: usize) {
        let cond = s
            .item
            .as_ref()
            .is_none_or(|item| item.status == Status::InProgress && item.lease_free());
        if !cond {
            if a < 2 {
                s.pcs[a] = Pc::RecordDesired;
            } else {
                s.finish(a, false);
            }
            return;
        }
        if s.item.is_none() {
            s.item = Some(Item {
                salt: s.incarnations,
                status: Status::InProgress,
                gen: 0,
                attempt: 0,
                lease: None,
                create_sent: false,
                arn: None,
                desired: [0, 0],
                desired_version: 0,
                state: [0, 0],
                applied_version: 0,
                update: None,
                update_attempt: 0,
                drift: None,
                outbox: Vec::new(),
            });
            s.incarnations += 1;
        }
        let item = s.item.as_mut().expect("claimed");
        item.attempt += 1;
        item.lease = Some(Lease {
            owner: item.attempt,
            live: true,
        });
        record_fields(item, a);
        s.pcs[a] = Pc::Create(Holder {
            salt: item.salt,
            gen: item.gen,
            attempt: item.attempt,
            fields: item.desired,
            version: item.desired_version,
        });
    }

    /// Whether an audit of the current `READY` item has work: drift to record, or a repair.
    fn audit_finds(&self, s: &State) -> bool {
        let Some(item) = &s.item else { return false };
        let Some(arn) = item.arn else { return false };
        let r = &s.resources[arn as usize];
        let gone = !r.alive && (item.drift != Some(Finding::Gone) || item.gen < self.max_gen);
        gone || (r.alive && r.status == ResourceStatus::Active && r.fields != item.state)
    }

    /// What a run of the reconciler without faults leaves: every other actor stops (crashed,
    /// its message gone), every lease runs out, every resource settles (becomes ready), and
    /// the reconciler runs until it finds nothing to do.
    pub fn settle(&self, s: &State) -> State {
        let mut t = s.clone();
        for a in [D1, D2, OPS] {
            t.pcs[a] = Pc::Idle;
        }
        t.messages = [false, false];
        if let Some(item) = t.item.as_mut() {
            if let Some(l) = item.lease.as_mut() {
                l.live = false;
            }
            if let Some(u) = item.update.as_mut() {
                u.live = false;
            }
        }
        let mut actions = Vec::new();
        for _ in 0..64 {
            for r in &mut t.resources {
                if r.status == ResourceStatus::Pending {
                    r.status = ResourceStatus::Active;
                }
            }
            actions.clear();
            self.actor_actions(&t, REC, &mut actions);
            let Some(next) = actions.iter().copied().find(Action::clean) else {
                break;
            };
            match self.next_state(&t, next) {
                Some(n) => t = n,
                None => break,
            }
        }
        t
    }
}

/// A new generation (an operator's retry, a repair): `IN_PROGRESS`, free to claim, no
/// resource, no update.
fn new_generation(item: &mut Item) {
    item.gen += 1;
    item.status = Status::InProgress;
    item.attempt = 0;
    item.lease = None;
    item.create_sent = false;
    item.arn = None;
    item.update = None;
    item.update_attempt = 0;
    item.drift = None;
}

impl Model for LedgerModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            item: None,
            incarnations: 0,
            resources: Vec::new(),
            pcs: [Pc::Idle; ACTORS],
            messages: [true, true],
            faults: 0,
            env: 0,
            ghost: Ghost::default(),
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        for a in 0..ACTORS {
            self.actor_actions(s, a, out);
        }
        let fault = s.faults < self.max_faults;
        let env = s.env < self.max_env;
        if let Some(item) = &s.item {
            if let Some(l) = item.lease {
                // A lease nobody works under runs out freely; one a holder still works
                // under runs out only as a fault (the holder stalled).
                if item.status == Status::InProgress
                    && l.live
                    && (fault || !s.holds_lease(item, l.owner))
                {
                    out.push(Action::ExpireLease);
                }
            }
            if let Some(u) = item.update {
                if u.live && (fault || !s.holds_update(item, u.owner)) {
                    out.push(Action::ExpireUpdateLease);
                }
            }
            // FAILED items expire 30 days after failing; the reconciler runs every few
            // minutes: the model lets TTL delete only an item whose outcomes were announced.
            if item.status == Status::Failed && item.outbox.is_empty() {
                out.push(Action::Ttl);
            }
        }
        for (i, r) in s.resources.iter().enumerate() {
            let i = i as u8;
            if r.alive && r.status == ResourceStatus::Pending {
                out.push(Action::Activate(i));
                if env {
                    out.push(Action::FailResource(i));
                }
            }
            if env && r.alive && r.status == ResourceStatus::Active {
                out.push(Action::Delete(i));
                if r.fields[0] != FOREIGN {
                    out.push(Action::Alter(i));
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            // Receiving a message (or finding an expired lease) and claiming are one step:
            // nothing is written in between.
            Action::Deliver(a) => {
                s.pcs[a] = Pc::Claim;
                self.step(&mut s, a);
            }
            Action::Redrive => {
                s.pcs[REC] = Pc::Claim;
                self.step(&mut s, REC);
            }
            Action::Resettle => {
                let item = s.item();
                let arn = item.arn.expect("CREATED has a resource");
                s.pcs[REC] = Pc::Settle {
                    salt: item.salt,
                    gen: item.gen,
                    arn,
                };
            }
            Action::Reconverge => {
                let item = s.item();
                s.pcs[REC] = Pc::ClaimUpdate {
                    salt: item.salt,
                    gen: item.gen,
                };
            }
            Action::Reannounce(o) => s.pcs[REC] = Pc::Announce(o),
            Action::StartAudit(a) => {
                let item = s.item();
                s.pcs[a] = Pc::Audit(Seen {
                    salt: item.salt,
                    gen: item.gen,
                    arn: item.arn.expect("READY has a resource"),
                    applied_version: item.applied_version,
                    state: item.state,
                    drift: item.drift,
                });
            }
            Action::StartRetry => {
                let item = s.item();
                s.pcs[OPS] = Pc::Retry {
                    salt: item.salt,
                    gen: item.gen,
                };
            }
            Action::Step { actor, lost } => {
                self.step(&mut s, actor);
                if lost {
                    // The write applied; its writer saw an error and gives up: nothing
                    // acknowledged, its message delivered again.
                    s.faults += 1;
                    s.messages = last.messages;
                    s.ghost.lost_request = last.ghost.lost_request;
                    s.pcs[actor] = Pc::Idle;
                }
            }
            Action::Create { actor, result } => {
                let Pc::Create(h) = s.pcs[actor] else {
                    unreachable!()
                };
                if !self.lease_live(&s, &h) {
                    s.ghost.acted_after_lease = true;
                }
                match result {
                    CreateResult::Ok => {
                        let arn = self.create(&mut s, (h.salt, h.gen), h.fields);
                        s.pcs[actor] = Pc::Complete(h, arn);
                    }
                    CreateResult::Lost => {
                        s.faults += 1;
                        self.create(&mut s, (h.salt, h.gen), h.fields);
                        s.pcs[actor] = Pc::Release(h);
                    }
                    CreateResult::Refused => {
                        s.env += 1;
                        s.pcs[actor] = Pc::FailPermanent(h);
                    }
                }
            }
            Action::Update { actor, result } => {
                let Pc::Update(u) = s.pcs[actor] else {
                    unreachable!()
                };
                if !self.update_live(&s, &u) {
                    s.ghost.acted_after_lease = true;
                }
                let alive = s.resources[u.arn as usize].alive;
                let apply = |s: &mut State| {
                    if alive {
                        s.resources[u.arn as usize].fields = u.fields;
                    }
                };
                match result {
                    UpdateResult::Ok => {
                        apply(&mut s);
                        // A resource that is gone refuses the update.
                        let end = if alive { End::Applied } else { End::Refused };
                        s.pcs[actor] = Pc::EndUpdate(u, end);
                    }
                    UpdateResult::Lost => {
                        s.faults += 1;
                        apply(&mut s);
                        s.finish(actor, false);
                    }
                    UpdateResult::Released => {
                        s.faults += 1;
                        s.pcs[actor] = Pc::EndUpdate(u, End::Released);
                    }
                    UpdateResult::Refused => {
                        s.env += 1;
                        s.pcs[actor] = Pc::EndUpdate(u, End::Refused);
                    }
                }
            }
            Action::Put { actor, result } => {
                let Pc::Announce(o) = s.pcs[actor] else {
                    unreachable!()
                };
                if !s.ghost.recorded.contains(&o) {
                    s.ghost.bogus = true;
                }
                match result {
                    PutResult::Ok => {
                        insert(&mut s.ghost.published, o);
                        s.pcs[actor] = Pc::Mark(o);
                    }
                    PutResult::Failed => {
                        s.faults += 1;
                        s.finish(actor, false);
                    }
                    PutResult::Lost => {
                        s.faults += 1;
                        insert(&mut s.ghost.published, o);
                        s.finish(actor, false);
                    }
                }
            }
            Action::Cut(a) => s.finish(a, false),
            Action::Crash(a) => {
                s.faults += 1;
                s.pcs[a] = Pc::Idle;
            }
            Action::ExpireLease => {
                let item = s.item.as_ref().expect("enabled with an item");
                let owner = item.lease.expect("enabled with a lease").owner;
                if s.holds_lease(item, owner) {
                    s.faults += 1;
                }
                if let Some(l) = s.item.as_mut().and_then(|i| i.lease.as_mut()) {
                    l.live = false;
                }
            }
            Action::ExpireUpdateLease => {
                let item = s.item.as_ref().expect("enabled with an item");
                let owner = item.update.expect("enabled with an update").owner;
                if s.holds_update(item, owner) {
                    s.faults += 1;
                }
                if let Some(u) = s.item.as_mut().and_then(|i| i.update.as_mut()) {
                    u.live = false;
                }
            }
            Action::Ttl => {
                s.item = None;
            }
            Action::Activate(i) => s.resources[i as usize].status = ResourceStatus::Active,
            Action::FailResource(i) => {
                s.env += 1;
                s.resources[i as usize].status = ResourceStatus::Failed;
            }
            Action::Delete(i) => {
                s.env += 1;
                s.resources[i as usize].alive = false;
            }
            Action::Alter(i) => {
                s.env += 1;
                s.resources[i as usize].fields[0] = FOREIGN;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("never two resources per key", |_, s: &State| {
                s.resources
                    .iter()
                    .filter(|r| r.alive && r.status != ResourceStatus::Failed)
                    .count()
                    <= 1
            }),
            Property::always(
                "never an announcement of something not recorded",
                |_, s: &State| !s.ghost.bogus,
            ),
            Property::always("no stale write applied", |_, s: &State| {
                s.ghost.stale.is_none()
            }),
            Property::always(
                "at most one Ready recorded per generation",
                |_, s: &State| !s.ghost.double_ready,
            ),
            Property::always("nothing asked is lost", |_, s: &State| {
                !s.ghost.lost_request
            }),
            Property::always("no holder acts after its lease", |_, s: &State| {
                !s.ghost.acted_after_lease
            }),
            Property::always(
                "every recorded outcome eventually announced",
                |m: &LedgerModel, s: &State| {
                    let t = m.settle(s);
                    t.pcs[REC] == Pc::Idle
                        && t.item.as_ref().is_none_or(|i| i.outbox.is_empty())
                        && t.ghost
                            .recorded
                            .iter()
                            .all(|o| t.ghost.published.binary_search(o).is_ok())
                },
            ),
            Property::always(
                "the latest desired state eventually applied",
                |m: &LedgerModel, s: &State| {
                    let t = m.settle(s);
                    match &t.item {
                        None => true,
                        Some(item) => match item.status {
                            Status::Failed => true,
                            Status::Ready => {
                                let arn = item.arn.expect("READY has a resource") as usize;
                                let r = &t.resources[arn];
                                item.applied_version == item.desired_version
                                    && (!r.alive && item.gen >= m.max_gen || r.fields == item.state)
                            }
                            Status::InProgress | Status::Created => false,
                        },
                    }
                },
            ),
            // Published, still in the outbox, and nobody about to mark it: its announcer
            // crashed after PutEvents (or never learnt that it succeeded).
            Property::sometimes("a crash after PutEvents", |_, s: &State| {
                s.item.as_ref().is_some_and(|item| {
                    item.outbox.iter().any(|o| {
                        s.ghost.published.binary_search(o).is_ok()
                            && !s.pcs.contains(&Pc::Mark(*o))
                            && !s.pcs.contains(&Pc::Announce(*o))
                    })
                })
            }),
            // A second claim in one generation: the first holder's lease ran out.
            Property::sometimes("a takeover after lease expiry", |_, s: &State| {
                s.item
                    .as_ref()
                    .is_some_and(|i| i.attempt >= 2 && i.lease.is_some_and(|l| l.live))
            }),
            Property::sometimes("a repair", |_, s: &State| {
                s.item.as_ref().is_some_and(|i| i.gen >= 1)
                    && s.ghost
                        .recorded
                        .iter()
                        .any(|o| o.kind == Kind::Drift && o.gen == 0)
            }),
            Property::sometimes("an operator's retry", |_, s: &State| {
                s.item.as_ref().is_some_and(|i| i.gen >= 1)
                    && s.ghost
                        .recorded
                        .iter()
                        .any(|o| o.kind == Kind::Failed && o.gen == 0)
            }),
            Property::sometimes("a TTL deletion, then a new item", |_, s: &State| {
                s.incarnations >= 2
            }),
            Property::sometimes("both requests' fields recorded", |_, s: &State| {
                s.item.as_ref().is_some_and(|i| i.desired == [1, 2])
            }),
            Property::sometimes("an update applied and announced", |_, s: &State| {
                s.ghost.published.iter().any(|o| o.kind == Kind::Updated)
            }),
            Property::sometimes("a refused update announced", |_, s: &State| {
                s.ghost.published.iter().any(|o| o.kind == Kind::Refused)
            }),
            Property::sometimes("a drift announced", |_, s: &State| {
                s.ghost.published.iter().any(|o| o.kind == Kind::Drift)
            }),
        ]
    }
}
