//! The hub's state and its one critical section. Everything that changes what a unit sees
//! happens under one mutex, in the order the hub's sequence numbers record, so a subscriber
//! that reads a unit's view and subscribes under that same lock misses nothing and sees
//! nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, oneshot};

use super::cursor::{Cursor, Portable};
use crate::cases::CurrentCase;
use crate::clock::SharedClock;
use crate::policy::{
    Decision, FieldPath, FieldSet, PolicyWorld, agreement_bound_between, case_deadline, evaluate, next_change, project,
};

/// (center id, case id).
pub type CaseKey = (String, String);

/// What the hub reacts to.
#[derive(Debug, Clone)]
pub enum Change {
    /// A case version was stored (acknowledged to its center).
    Case(Arc<CurrentCase>),
    /// The agreements, consents or registry changed (`AppContext::set_policy`).
    Policy(Arc<PolicyWorld>),
    /// Time may have passed a deadline or an effective date: re-check what is due.
    Tick,
    /// Every row of the store's change log up to here has been applied (the follower says so
    /// after each page it reads). Cursors name it so that another instance can resume them.
    Position(i64),
    /// A case was transferred: `from` is no longer a case (its units are withdrawn it; its
    /// reference now names `to`), and `to` carries `transferred_from`. `change` is the old
    /// case's row in the change log. Applied before the case under `to` arrives.
    Moved { from: CaseKey, to: CaseKey, change: i64 },
}

/// Where changes come from besides this process's own ingest: e.g. a PostgreSQL
/// LISTEN/NOTIFY listener that loads each notified row and yields `Change::Case`.
pub trait ChangeSource: Send + 'static {
    fn next(&mut self) -> impl std::future::Future<Output = Option<Change>> + Send;
}

impl ChangeSource for tokio::sync::mpsc::Receiver<Change> {
    async fn next(&mut self) -> Option<Change> {
        self.recv().await
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// Events a unit's ring holds: a stream that falls this far behind is cut and resumes by
    /// cursor.
    pub ring: usize,
    /// How often (real time) the hub compares the clock with the next due instant and with
    /// the earliest token expiry. With a manual clock, tests advance it and wait one period
    /// (or call `apply(Change::Tick)`).
    pub recheck: Duration,
    /// Comment lines that keep proxies and the browser from timing the stream out.
    pub heartbeat: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            ring: 256,
            recheck: Duration::from_millis(250),
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// One case as one unit sees it: evaluated and projected once — its summary for lists, search
/// and the stream, its full view for an officer who opens it — shared by all its streams.
#[derive(Debug)]
pub struct UnitCase {
    pub reference: String,
    pub case: Arc<CurrentCase>,
    pub decision: Decision,
    /// Of the full view, allowed ∩ present: what a detail (or print) entry records.
    pub disclosed: FieldSet,
    /// The detail's JSON object (`case`) without its closing brace; each answer appends its
    /// receipt.
    pub head: String,
    /// Of the summary, allowed ∩ present: what a list, search or stream entry records.
    pub summary_disclosed: FieldSet,
    /// The list item's and stream event's JSON object (`summary`), likewise unclosed.
    pub summary_head: String,
}

#[derive(Debug, Clone)]
pub enum UnitEvent {
    Case(Arc<UnitCase>),
    /// The case left the unit's view; only ever sent to a unit that was shown it.
    Withdraw {
        reference: String,
    },
    /// A missing-child alert is raised: the case's `flags.missing` became true (or the case,
    /// missing, entered the unit's view) and the unit's view shows that flag. Carries the
    /// unit's view of the case, like `Case`.
    Alert(Arc<UnitCase>),
    /// The alert ended: the flag cleared, or the case left the unit's view.
    AlertEnded {
        reference: String,
    },
}

#[derive(Debug)]
pub struct Stamped {
    pub seq: u64,
    /// Where the hub stood when it emitted the event (see `live::cursor`).
    pub mark: Portable,
    pub event: UnitEvent,
}

/// How a subscription starts.
#[derive(Debug)]
pub enum Start {
    /// The cursor could not be honoured: the full current view, after a `reset`.
    Full(Vec<Arc<UnitCase>>),
    /// Everything that changed after the cursor, each case in its current state.
    Resume(Vec<UnitEvent>),
}

pub struct Subscription {
    pub start: Start,
    /// The cursor that covers `start`.
    pub cursor: Cursor,
    pub events: broadcast::Receiver<Arc<Stamped>>,
    /// Resuming another instance's (or process's) cursor: cases that changed after it and are
    /// not in the unit's view now, of which this hub cannot tell whether the terminal was shown
    /// an earlier version. The caller withdraws each one the unit was ever disclosed (the audit
    /// log knows), so a withdrawal never names a case the unit has not seen.
    pub uncertain: Vec<CaseKey>,
    /// The alerts in force among the cases `start` sends (for a full view, every alert of the
    /// unit): a terminal that was away learns of them after their cases.
    pub alerts: Vec<Arc<UnitCase>>,
}

struct UnitState {
    tx: broadcast::Sender<Arc<Stamped>>,
    visible: BTreeMap<CaseKey, Arc<UnitCase>>,
    /// Cases this hub withdrew from the unit and has not shown it again.
    withdrawn: HashSet<CaseKey>,
    /// Cases of the view whose missing-child alert is raised for this unit.
    alerting: HashSet<CaseKey>,
    journal: VecDeque<(u64, CaseKey)>,
    /// Events up to this seq may have left the journal.
    floor: u64,
}

struct State {
    seq: u64,
    world: Arc<PolicyWorld>,
    /// The digest of `world` (see `live::cursor`).
    epoch: u64,
    /// Every change-log row up to here is applied.
    position: i64,
    /// Every deadline up to here is applied.
    exact_at: OffsetDateTime,
    cases: HashMap<CaseKey, Arc<CurrentCase>>,
    /// Every case by its latest change-log row.
    by_change: BTreeSet<(i64, CaseKey)>,
    /// Every case whose view time alone may change, by that instant (past ones included).
    deadlines: BTreeSet<(OffsetDateTime, CaseKey)>,
    due: BTreeSet<(OffsetDateTime, CaseKey)>,
    due_of: HashMap<CaseKey, OffsetDateTime>,
    units: BTreeMap<String, UnitState>,
    /// Transferred cases: old key → the key the case continues under.
    moved: HashMap<CaseKey, CaseKey>,
    /// The reverse: a transferred case's key → its old reference (`transferred_from`).
    origin: HashMap<CaseKey, String>,
}

type Expiries = BTreeMap<(OffsetDateTime, u64), oneshot::Sender<()>>;

pub struct Hub {
    state: Mutex<State>,
    expiries: Mutex<Expiries>,
    next_expiry_id: std::sync::atomic::AtomicU64,
    clock: SharedClock,
    instance: u64,
    settings: HubSettings,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("instance", &format_args!("{:x}", self.instance))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn key_of(case: &CurrentCase) -> CaseKey {
    (
        case.record.center_id.as_str().to_owned(),
        case.record.case_id.as_str().to_owned(),
    )
}

/// The shared part of a list item, stream `case` event (`summary`) or detail (`case`).
#[derive(Serialize)]
struct Head<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    center_id: &'a str,
    case_id: &'a str,
    version: u64,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    case: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<serde_json::Map<String, serde_json::Value>>,
    /// The fields this answer's set allows, so a terminal can tell "not shared" from "not set"
    /// (the 48-hour badge needs to know whether a missing safety confirmation is just hidden).
    allowed: Vec<&'static str>,
    /// The case's reference under the center it was transferred from.
    #[serde(skip_serializing_if = "Option::is_none")]
    transferred_from: Option<&'a str>,
}

/// Serialized without its closing brace, for the receipt to follow.
fn open_json(head: &Head<'_>) -> String {
    let mut out = serde_json::to_string(head).unwrap_or_else(|_| "{".to_owned());
    out.pop();
    out
}

impl UnitCase {
    fn build(case: Arc<CurrentCase>, decision: Decision, transferred_from: Option<&str>) -> Self {
        let reference = case.record.reference();
        let r = &case.record;
        let build = |fields: FieldSet, full: bool| {
            let (projected, disclosed) = project(r, fields);
            let (case, summary) = if full {
                (Some(projected), None)
            } else {
                (None, Some(projected))
            };
            let head = Head {
                reference: &reference,
                center_id: r.center_id.as_str(),
                case_id: r.case_id.as_str(),
                version: r.version,
                updated_at: r.updated_at,
                case,
                summary,
                allowed: fields.iter().map(FieldPath::as_str).collect(),
                transferred_from,
            };
            (open_json(&head), disclosed)
        };
        let (head, disclosed) = build(decision.fields, true);
        let (summary_head, summary_disclosed) = build(decision.summary, false);
        Self {
            reference,
            case,
            decision,
            disclosed,
            head,
            summary_disclosed,
            summary_head,
        }
    }

    /// Appends this case as a list item or stream event carries it: its summary and receipt.
    pub fn write_summary(&self, out: &mut String, receipt_json: &str) {
        close(out, &self.summary_head, receipt_json);
    }

    /// Appends this case as an opened (or printed) case: its full view and receipt.
    pub fn write_with_receipt(&self, out: &mut String, receipt_json: &str) {
        close(out, &self.head, receipt_json);
    }
}

fn close(out: &mut String, head: &str, receipt_json: &str) {
    out.push_str(head);
    out.push_str(",\"receipt\":");
    out.push_str(receipt_json);
    out.push('}');
}

impl Hub {
    /// What `unit` sees now, in (center, case id) order: each case as the hub evaluated and
    /// projected it. Deadlines that have passed are applied first, so the answer is exact at
    /// the clock's now.
    pub fn view(&self, unit: &str) -> Vec<Arc<UnitCase>> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        state.catch_up(now);
        state
            .units
            .get(unit)
            .map(|u| u.visible.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The cases of `unit`'s view that `reference` names: `<center>:<case>`, or a bare case id
    /// (several when it is ambiguous within the view).
    pub fn find(&self, unit: &str, reference: &str) -> Vec<Arc<UnitCase>> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        state.catch_up(now);
        let Some(u) = state.units.get(unit) else {
            return Vec::new();
        };
        match reference.split_once(':') {
            Some((center, case)) => {
                // A transferred case's old reference names it under its new center.
                let mut key = (center.to_owned(), case.to_owned());
                for _ in 0..MAX_MOVES {
                    match state.moved.get(&key) {
                        Some(to) => key = to.clone(),
                        None => break,
                    }
                }
                u.visible.get(&key).cloned().into_iter().collect()
            }
            None => u
                .visible
                .iter()
                .filter(|((_, case), _)| case == reference)
                .map(|(_, c)| c.clone())
                .collect(),
        }
    }

    /// The current version of a case, whoever may see it (for its own center).
    pub fn case(&self, center_id: &str, case_id: &str) -> Option<Arc<CurrentCase>> {
        lock(&self.state)
            .cases
            .get(&(center_id.to_owned(), case_id.to_owned()))
            .cloned()
    }

    /// How many cases the hub holds.
    pub fn case_count(&self) -> usize {
        lock(&self.state).cases.len()
    }

    /// A hub over the current cases and policy; starts its re-check task.
    /// `position`: the change-log row up to which `cases` are complete.
    pub fn start(
        clock: SharedClock,
        world: Arc<PolicyWorld>,
        cases: Vec<Arc<CurrentCase>>,
        position: i64,
        settings: HubSettings,
    ) -> Arc<Self> {
        use rand_core::RngCore;
        let now = clock.now();
        let hub = Arc::new(Self {
            state: Mutex::new(State {
                seq: 0,
                epoch: digest(&world),
                world,
                position,
                exact_at: now,
                cases: HashMap::new(),
                by_change: BTreeSet::new(),
                deadlines: BTreeSet::new(),
                due: BTreeSet::new(),
                due_of: HashMap::new(),
                units: BTreeMap::new(),
                moved: HashMap::new(),
                origin: HashMap::new(),
            }),
            expiries: Mutex::new(BTreeMap::new()),
            next_expiry_id: std::sync::atomic::AtomicU64::new(0),
            clock,
            instance: rand_core::OsRng.next_u64() >> 1,
            settings,
        });
        {
            let now = hub.clock.now();
            let mut state = lock(&hub.state);
            let unit_ids: Vec<String> = state.world.registry.units().map(|u| u.id.clone()).collect();
            for id in unit_ids {
                state.unit(&id, &hub.settings);
            }
            for case in cases {
                state.apply_case(case, now);
            }
        }
        tokio::spawn(recheck_loop(Arc::downgrade(&hub), settings.recheck));
        hub
    }

    pub fn settings(&self) -> HubSettings {
        self.settings
    }

    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The change-log row up to which every change is applied here.
    pub fn position(&self) -> i64 {
        lock(&self.state).position
    }

    /// Applies one change: evaluated once per unit, broadcast to the units whose view changed.
    pub fn apply(&self, change: Change) {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        match change {
            Change::Case(case) => state.apply_case(case, now),
            Change::Policy(world) => state.apply_policy(world, now, &self.settings),
            Change::Tick => state.apply_due(now),
            Change::Position(position) => state.position = state.position.max(position),
            Change::Moved { from, to, change } => state.apply_moved(from, to, change, now),
        }
    }

    /// Feeds the hub from `source` until it ends.
    pub fn attach(self: &Arc<Self>, mut source: impl ChangeSource) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(change) = source.next().await {
                let Some(hub) = hub.upgrade() else { return };
                hub.apply(change);
            }
        });
    }

    /// Subscribes to `unit`'s events, starting after `cursor` when the hub can honour it: from
    /// its own journal when it issued the cursor, or, for a portable cursor from another
    /// instance or an earlier process, by re-sending what changed after it.
    pub fn subscribe(&self, unit: &str, cursor: Option<Cursor>) -> Subscription {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        state.catch_up(now);
        let seq = state.seq;
        let mark = state.mark();
        state.unit(unit, &self.settings);
        let state = &*state;
        let Some(u) = state.units.get(unit) else {
            return self.full(Vec::new(), broadcast::channel(1).1, seq, mark);
        };
        let events = u.tx.subscribe();
        let own = cursor.filter(|c| c.instance == self.instance && c.seq <= seq && c.seq >= u.floor);
        if let Some(c) = own {
            let resume = journal_since(u, c.seq);
            return Subscription {
                alerts: alerts_among(u, &resume),
                start: Start::Resume(resume),
                cursor: self.stamp(seq, mark),
                events,
                uncertain: Vec::new(),
            };
        }
        match cursor.and_then(|c| c.portable).and_then(|p| state.since(u, p, now)) {
            Some((resume, uncertain)) => Subscription {
                alerts: alerts_among(u, &resume),
                start: Start::Resume(resume),
                cursor: self.stamp(seq, mark),
                events,
                uncertain,
            },
            None => {
                let mut sub = self.full(u.visible.values().cloned().collect(), events, seq, mark);
                sub.alerts = u
                    .visible
                    .iter()
                    .filter(|(k, _)| u.alerting.contains(*k))
                    .map(|(_, c)| c.clone())
                    .collect();
                sub
            }
        }
    }

    fn full(
        &self,
        cases: Vec<Arc<UnitCase>>,
        events: broadcast::Receiver<Arc<Stamped>>,
        seq: u64,
        mark: Portable,
    ) -> Subscription {
        Subscription {
            start: Start::Full(cases),
            cursor: self.stamp(seq, mark),
            events,
            uncertain: Vec::new(),
            alerts: Vec::new(),
        }
    }

    /// The cursor of an event.
    pub fn stamp(&self, seq: u64, mark: Portable) -> Cursor {
        Cursor {
            instance: self.instance,
            seq,
            portable: Some(mark),
        }
    }

    /// Closes the returned receiver once the clock passes `at` (a token's expiry). Dropping
    /// the guard unregisters it.
    pub fn expire_at(self: &Arc<Self>, at: OffsetDateTime) -> (oneshot::Receiver<()>, ExpiryGuard) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_expiry_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.expiries).insert((at, id), tx);
        (
            rx,
            ExpiryGuard {
                hub: Arc::downgrade(self),
                key: (at, id),
            },
        )
    }

    fn expire(&self, now: OffsetDateTime) {
        let mut expiries = lock(&self.expiries);
        let still = expiries.split_off(&(now, u64::MAX));
        let expired = std::mem::replace(&mut *expiries, still);
        drop(expiries);
        for (_, tx) in expired {
            let _ = tx.send(());
        }
    }
}

pub struct ExpiryGuard {
    hub: Weak<Hub>,
    key: (OffsetDateTime, u64),
}

impl Drop for ExpiryGuard {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            lock(&hub.expiries).remove(&self.key);
        }
    }
}

async fn recheck_loop(hub: Weak<Hub>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let now = hub.clock.now();
        let due = {
            let state = lock(&hub.state);
            state.due.first().is_some_and(|(t, _)| *t <= now)
        };
        if due {
            hub.apply(Change::Tick);
        }
        hub.expire(now);
    }
}

impl State {
    fn unit(&mut self, id: &str, settings: &HubSettings) -> &mut UnitState {
        self.units.entry(id.to_owned()).or_insert_with(|| UnitState {
            tx: broadcast::channel(settings.ring.max(1)).0,
            visible: BTreeMap::new(),
            withdrawn: HashSet::new(),
            alerting: HashSet::new(),
            journal: VecDeque::new(),
            floor: 0,
        })
    }

    fn apply_case(&mut self, case: Arc<CurrentCase>, now: OffsetDateTime) {
        let key = key_of(&case);
        // Updates may arrive out of order (concurrent pushes, or a second instance's NOTIFY).
        if self.cases.get(&key).is_some_and(|c| c.seq >= case.seq) {
            return;
        }
        if let Some(old) = self.cases.get(&key) {
            self.by_change.remove(&(old.change, key.clone()));
            if let Some(t) = case_deadline(&old.record) {
                self.deadlines.remove(&(t, key.clone()));
            }
        }
        self.by_change.insert((case.change, key.clone()));
        if let Some(t) = case_deadline(&case.record) {
            self.deadlines.insert((t, key.clone()));
        }
        self.cases.insert(key.clone(), case);
        self.schedule(&key, now);
        self.reevaluate(&key, now, true);
    }

    fn apply_moved(&mut self, from: CaseKey, to: CaseKey, change: i64, now: OffsetDateTime) {
        self.origin.insert(to.clone(), format!("{}:{}", from.0, from.1));
        self.moved.insert(from.clone(), to.clone());
        if let Some(old) = self.cases.remove(&from) {
            // Kept in the change order at the move, so a portable cursor from before it learns
            // that the old reference is gone.
            self.by_change.remove(&(old.change, from.clone()));
            self.by_change.insert((change.max(old.change), from.clone()));
            if let Some(t) = case_deadline(&old.record) {
                self.deadlines.remove(&(t, from.clone()));
            }
            if let Some(t) = self.due_of.remove(&from) {
                self.due.remove(&(t, from.clone()));
            }
            self.reevaluate_gone(&from);
        }
        // A case already here under its new key (a restart) now carries its origin.
        if self.cases.contains_key(&to) {
            self.reevaluate(&to, now, true);
        }
    }

    fn apply_policy(&mut self, world: Arc<PolicyWorld>, now: OffsetDateTime, settings: &HubSettings) {
        self.epoch = digest(&world);
        self.world = world;
        let unit_ids: Vec<String> = self.world.registry.units().map(|u| u.id.clone()).collect();
        for id in unit_ids {
            self.unit(&id, settings);
        }
        let keys: Vec<CaseKey> = self.cases.keys().cloned().collect();
        for key in keys {
            self.schedule(&key, now);
            self.reevaluate(&key, now, false);
        }
    }

    /// Applies every deadline that has passed by `now`.
    fn catch_up(&mut self, now: OffsetDateTime) {
        if self.due.first().is_some_and(|(t, _)| *t <= now) {
            self.apply_due(now);
        }
        self.exact_at = self.exact_at.max(now);
    }

    fn apply_due(&mut self, now: OffsetDateTime) {
        let mut keys = Vec::new();
        while let Some((t, _)) = self.due.first() {
            if *t > now {
                break;
            }
            if let Some((_, k)) = self.due.pop_first() {
                self.due_of.remove(&k);
                keys.push(k);
            }
        }
        for key in keys {
            self.schedule(&key, now);
            self.reevaluate(&key, now, false);
        }
        self.exact_at = self.exact_at.max(now);
    }

    /// Where the hub stands, for the cursors of the events it emits now.
    fn mark(&self) -> Portable {
        Portable {
            position: self.position,
            at_ms: unix_ms(self.exact_at),
            epoch: self.epoch,
        }
    }

    /// What `unit` must be sent to go from the view `p` describes to its view now, if this
    /// hub can tell: `None` when the policy differs, this hub has not applied the log as far, an
    /// agreement's effective date fell in between, the cursor is ahead of this clock, or too
    /// much changed to be worth more than a full view.
    fn since(&self, unit: &UnitState, p: Portable, now: OffsetDateTime) -> Option<(Vec<UnitEvent>, Vec<CaseKey>)> {
        let at = from_unix_ms(p.at_ms)?;
        if p.epoch != self.epoch
            || p.position > self.position
            || at > now
            || agreement_bound_between(&self.world, at, now)
        {
            return None;
        }
        let changed = self
            .by_change
            .range((p.position.saturating_add(1), (String::new(), String::new()))..)
            .map(|(_, k)| k);
        let due = self
            .deadlines
            .range((at + time::Duration::NANOSECOND, (String::new(), String::new()))..)
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| k);
        let touched: BTreeSet<&CaseKey> = changed.chain(due).take(JOURNAL_CAP + 1).collect();
        if touched.len() > JOURNAL_CAP {
            return None;
        }
        let (mut events, mut uncertain) = (Vec::new(), Vec::new());
        for key in touched {
            if let Some(uc) = unit.visible.get(key) {
                events.push(UnitEvent::Case(uc.clone()));
            } else if unit.withdrawn.contains(key) {
                events.push(UnitEvent::Withdraw {
                    reference: format!("{}:{}", key.0, key.1),
                });
            } else {
                uncertain.push(key.clone());
            }
        }
        Some((events, uncertain))
    }

    fn schedule(&mut self, key: &CaseKey, now: OffsetDateTime) {
        if let Some(t) = self.due_of.remove(key) {
            self.due.remove(&(t, key.clone()));
        }
        let next = self
            .cases
            .get(key)
            .and_then(|c| next_change(&self.world, &c.record, now));
        if let Some(t) = next {
            self.due.insert((t, key.clone()));
            self.due_of.insert(key.clone(), t);
        }
    }

    /// Re-decides `key` for every unit. `new_version`: the case itself changed, so every unit
    /// that sees it gets the new version; otherwise only units whose decision changed.
    fn reevaluate(&mut self, key: &CaseKey, now: OffsetDateTime, new_version: bool) {
        let Some(case) = self.cases.get(key).cloned() else {
            return;
        };
        let world = self.world.clone();
        let mark = self.mark();
        let origin = self.origin.get(key).cloned();
        let mut seq = self.seq;
        for (unit_id, unit) in &mut self.units {
            let decision = evaluate(&world, &case.record, unit_id, now);
            let event = match (decision, unit.visible.get(key)) {
                (Some(d), Some(prev)) if !new_version && prev.decision == d => None,
                (Some(d), _) => {
                    let uc = Arc::new(UnitCase::build(case.clone(), d, origin.as_deref()));
                    unit.visible.insert(key.clone(), uc.clone());
                    unit.withdrawn.remove(key);
                    Some(UnitEvent::Case(uc))
                }
                (None, Some(prev)) => {
                    let reference = prev.reference.clone();
                    unit.visible.remove(key);
                    unit.withdrawn.insert(key.clone());
                    Some(UnitEvent::Withdraw { reference })
                }
                (None, None) => None,
            };
            emit(unit, key, event, &mut seq, mark);
        }
        self.seq = seq;
    }

    /// `key` is no longer a case here (it was transferred): every unit shown it is withdrawn it.
    fn reevaluate_gone(&mut self, key: &CaseKey) {
        let mark = self.mark();
        let mut seq = self.seq;
        for unit in self.units.values_mut() {
            let event = unit.visible.remove(key).map(|prev| {
                unit.withdrawn.insert(key.clone());
                UnitEvent::Withdraw {
                    reference: prev.reference.clone(),
                }
            });
            emit(unit, key, event, &mut seq, mark);
        }
        self.seq = seq;
    }
}

/// Journals and broadcasts `event` (if any) on `unit`'s ring, then the alert event its view of
/// `key` now calls for, if any.
fn emit(unit: &mut UnitState, key: &CaseKey, event: Option<UnitEvent>, seq: &mut u64, mark: Portable) {
    if let Some(event) = event {
        *seq += 1;
        unit.journal.push_back((*seq, key.clone()));
        while unit.journal.len() > JOURNAL_CAP {
            if let Some((s, _)) = unit.journal.pop_front() {
                unit.floor = s;
            }
        }
        // No receivers is not an error: nobody of this unit is watching right now.
        let _ = unit.tx.send(Arc::new(Stamped { seq: *seq, mark, event }));
    }
    // After the case event, so a terminal has the case when the alert names it. Not journaled:
    // a resume re-derives alerts from the unit's state (`alerts_among`).
    if let Some(alert) = alert_transition(unit, key) {
        *seq += 1;
        let _ = unit.tx.send(Arc::new(Stamped {
            seq: *seq,
            mark,
            event: alert,
        }));
    }
}

/// The most transfers one old reference is followed through.
const MAX_MOVES: usize = 8;

/// Whether `case` raises a missing-child alert for its unit: the child is missing and the unit's
/// summary shows that flag (the alert carries the summary, as a `case` event does; an alert to a
/// unit that may not see the flag would disclose it).
fn raises_alert(case: &UnitCase) -> bool {
    case.case.record.flags.missing && case.decision.summary.contains(FieldPath::FlagsMissing)
}

/// The alert event `unit` gets now for `key`, if its alert state changed: raised when the case
/// is in the view and raises an alert that was not raised, ended when it no longer does.
fn alert_transition(unit: &mut UnitState, key: &CaseKey) -> Option<UnitEvent> {
    let now = unit.visible.get(key).filter(|c| raises_alert(c)).cloned();
    match (now, unit.alerting.contains(key)) {
        (Some(case), false) => {
            unit.alerting.insert(key.clone());
            Some(UnitEvent::Alert(case))
        }
        (None, true) => {
            unit.alerting.remove(key);
            Some(UnitEvent::AlertEnded {
                reference: format!("{}:{}", key.0, key.1),
            })
        }
        _ => None,
    }
}

/// The alerts in force among the cases a resume sends.
fn alerts_among(u: &UnitState, resume: &[UnitEvent]) -> Vec<Arc<UnitCase>> {
    resume
        .iter()
        .filter_map(|e| match e {
            UnitEvent::Case(c) if u.alerting.contains(&key_of(&c.case)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// Events per unit remembered for resumption; older cursors get a full reset. An entry is a
/// sequence number and a case key, so this is cheap. Also the most cases a portable resume
/// re-sends before a full view is the better answer.
const JOURNAL_CAP: usize = 4096;

/// Each case `unit`'s journal names after `seq`, once, in its current state, in the order last
/// touched.
fn journal_since(u: &UnitState, seq: u64) -> Vec<UnitEvent> {
    let mut seen = HashSet::new();
    let mut touched: Vec<&CaseKey> = u
        .journal
        .iter()
        .rev()
        .take_while(|(s, _)| *s > seq)
        .map(|(_, k)| k)
        .filter(|k| seen.insert(*k))
        .collect();
    touched.reverse();
    touched
        .into_iter()
        .map(|k| match u.visible.get(k) {
            Some(uc) => UnitEvent::Case(uc.clone()),
            None => UnitEvent::Withdraw {
                reference: format!("{}:{}", k.0, k.1),
            },
        })
        .collect()
}

/// The policy world's identity for cursors: a digest of everything it holds. Two instances
/// that loaded the same agreements, consents and registry agree on it; any difference, even
/// between builds that print the world differently, only costs a full view.
fn digest(world: &PolicyWorld) -> u64 {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{world:?}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(hash.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::cases::record::CaseId;
    use crate::clock::ManualClock;
    use crate::policy::evaluate::tests::{NOW, case, world};

    fn current(id: &str, seq: i64) -> Arc<CurrentCase> {
        let mut record = case("kanagawa-central", "142123");
        record.case_id = CaseId::parse(id).unwrap();
        Arc::new(CurrentCase {
            record,
            seq,
            change: seq,
        })
    }

    fn with_change(id: &str, seq: i64, change: i64) -> Arc<CurrentCase> {
        let mut c = (*current(id, seq)).clone();
        c.change = change;
        Arc::new(c)
    }

    fn resumed(start: &Start) -> Vec<String> {
        match start {
            Start::Full(_) => vec!["<full>".into()],
            Start::Resume(events) => events.iter().map(names).collect(),
        }
    }

    #[tokio::test]
    async fn a_portable_cursor_resumes_on_another_hub_with_only_what_changed_after_it() {
        let clock = Arc::new(ManualClock::new(NOW));
        let cases = || vec![with_change("A", 1, 1), with_change("B", 2, 2)];
        let one = Hub::start(clock.clone(), Arc::new(world()), cases(), 2, HubSettings::default());
        let two = Hub::start(clock.clone(), Arc::new(world()), cases(), 2, HubSettings::default());
        let cursor = one.subscribe("atsugi", None).cursor;
        assert_eq!(
            resumed(&two.subscribe("atsugi", Some(cursor)).start),
            Vec::<String>::new()
        );

        // Both hubs apply the same log: a new version of A and a new case C.
        for hub in [&one, &two] {
            hub.apply(Change::Case(with_change("A", 3, 3)));
            hub.apply(Change::Case(with_change("C", 4, 4)));
            hub.apply(Change::Position(4));
        }
        let sub = two.subscribe("atsugi", Some(cursor));
        assert_eq!(
            resumed(&sub.start),
            ["case kanagawa-central:A", "case kanagawa-central:C"]
        );
        assert!(sub.uncertain.is_empty());
        // The new cursor names this hub and resumes on the first one too.
        assert_eq!(
            resumed(&one.subscribe("atsugi", Some(sub.cursor)).start),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn a_portable_cursor_is_not_honoured_where_the_hub_cannot_vouch_for_it() {
        let clock = Arc::new(ManualClock::new(NOW));
        let one = Hub::start(
            clock.clone(),
            Arc::new(world()),
            vec![with_change("A", 1, 1)],
            1,
            HubSettings::default(),
        );
        let cursor = one.subscribe("atsugi", None).cursor;
        let p = cursor.portable.unwrap();

        // Another policy world: any view may differ.
        let mut other = world();
        other.agreements.pop();
        let changed = Hub::start(
            clock.clone(),
            Arc::new(other),
            vec![with_change("A", 1, 1)],
            1,
            HubSettings::default(),
        );
        assert_eq!(resumed(&changed.subscribe("atsugi", Some(cursor)).start), ["<full>"]);

        // A hub that has not applied the log as far as the cursor.
        let behind = Hub::start(clock.clone(), Arc::new(world()), Vec::new(), 0, HubSettings::default());
        assert_eq!(resumed(&behind.subscribe("atsugi", Some(cursor)).start), ["<full>"]);

        // A cursor from ahead of this clock.
        let ahead = Cursor {
            portable: Some(Portable {
                at_ms: p.at_ms + 60_000,
                ..p
            }),
            ..cursor
        };
        let same = Hub::start(
            clock.clone(),
            Arc::new(world()),
            vec![with_change("A", 1, 1)],
            1,
            HubSettings::default(),
        );
        assert_eq!(resumed(&same.subscribe("atsugi", Some(ahead)).start), ["<full>"]);
        // The plain old form, from another instance: a full view.
        let plain = Cursor {
            portable: None,
            ..cursor
        };
        assert_eq!(resumed(&same.subscribe("atsugi", Some(plain)).start), ["<full>"]);
    }

    #[tokio::test]
    async fn a_case_withdrawn_after_a_portable_cursor_is_withdrawn_or_left_for_the_audit_log() {
        let clock = Arc::new(ManualClock::new(NOW));
        let one = Hub::start(
            clock.clone(),
            Arc::new(world()),
            vec![with_change("A", 1, 1)],
            1,
            HubSettings::default(),
        );
        let cursor = one.subscribe("atsugi", None).cursor;
        // A is closed: no longer shown anywhere.
        let mut closed = (*with_change("A", 2, 2)).clone();
        closed.record.status = crate::cases::record::Status::Closed;
        let closed = Arc::new(closed);
        one.apply(Change::Case(closed.clone()));
        one.apply(Change::Position(2));
        // This hub withdrew it itself: it says so.
        assert_eq!(
            resumed(&one.subscribe("atsugi", Some(Cursor { instance: 1, ..cursor })).start),
            ["withdraw kanagawa-central:A"]
        );
        // A hub started after the change never showed it: it cannot tell, and asks.
        let later = Hub::start(
            clock.clone(),
            Arc::new(world()),
            vec![closed],
            2,
            HubSettings::default(),
        );
        let sub = later.subscribe("atsugi", Some(cursor));
        assert_eq!(resumed(&sub.start), Vec::<String>::new());
        assert_eq!(sub.uncertain, [("kanagawa-central".to_owned(), "A".to_owned())]);
    }

    #[tokio::test]
    async fn a_deadline_that_fell_after_a_portable_cursor_resends_the_case() {
        let clock = Arc::new(ManualClock::new(NOW));
        let mut c = (*with_change("D", 1, 1)).clone();
        c.record.safety_confirmed_at = None;
        c.record.intake_at = NOW - time::Duration::hours(47);
        let c = Arc::new(c);
        let one = Hub::start(
            clock.clone(),
            Arc::new(world()),
            vec![c.clone()],
            1,
            HubSettings::default(),
        );
        let cursor = one.subscribe("atsugi", None).cursor;
        clock.advance(time::Duration::hours(2));
        let two = Hub::start(clock.clone(), Arc::new(world()), vec![c], 1, HubSettings::default());
        let sub = two.subscribe("atsugi", Some(cursor));
        let got = resumed(&sub.start);
        assert_ne!(got, ["<full>"]);
        let shown_now = two.view("atsugi").iter().any(|u| u.reference == "kanagawa-central:D");
        assert_eq!(got.contains(&"case kanagawa-central:D".to_owned()), shown_now);
    }

    fn names(e: &UnitEvent) -> String {
        match e {
            UnitEvent::Case(c) => format!("case {}", c.reference),
            UnitEvent::Withdraw { reference } => format!("withdraw {reference}"),
            UnitEvent::Alert(c) => format!("alert {}", c.reference),
            UnitEvent::AlertEnded { reference } => format!("alert ended {reference}"),
        }
    }

    #[tokio::test]
    async fn an_alert_is_raised_after_the_case_and_ended_when_the_flag_clears_or_the_case_moves() {
        let hub = Hub::start(
            Arc::new(ManualClock::new(NOW)),
            Arc::new(world()),
            Vec::new(),
            0,
            HubSettings::default(),
        );
        let mut rx = hub.subscribe("atsugi", None).events;
        let missing = |seq: i64, flag: bool| {
            let mut c = (*current("M", seq)).clone();
            c.record.flags.missing = flag;
            Arc::new(c)
        };
        let mut next = async || names(&rx.recv().await.unwrap().event);
        hub.apply(Change::Case(missing(1, false)));
        assert_eq!(next().await, "case kanagawa-central:M");
        hub.apply(Change::Case(missing(2, true)));
        assert_eq!(next().await, "case kanagawa-central:M");
        assert_eq!(next().await, "alert kanagawa-central:M");
        // Still missing: a new version raises nothing new.
        hub.apply(Change::Case(missing(3, true)));
        assert_eq!(next().await, "case kanagawa-central:M");
        hub.apply(Change::Case(missing(4, false)));
        assert_eq!(next().await, "case kanagawa-central:M");
        assert_eq!(next().await, "alert ended kanagawa-central:M");
        // Missing again, then transferred away: withdrawn, and the alert ends with it.
        hub.apply(Change::Case(missing(5, true)));
        assert_eq!(next().await, "case kanagawa-central:M");
        assert_eq!(next().await, "alert kanagawa-central:M");
        let sub = hub.subscribe("atsugi", None);
        assert_eq!(sub.alerts.len(), 1);
        hub.apply(Change::Moved {
            from: ("kanagawa-central".into(), "M".into()),
            to: ("yokosuka".into(), "M".into()),
            change: 6,
        });
        assert_eq!(next().await, "withdraw kanagawa-central:M");
        assert_eq!(next().await, "alert ended kanagawa-central:M");
        assert!(hub.subscribe("atsugi", None).alerts.is_empty());
    }

    #[test]
    fn only_a_view_that_shows_the_missing_flag_raises_an_alert() {
        let mut record = case("kanagawa-central", "142123");
        record.flags.missing = true;
        let decision = evaluate(&world(), &record, "atsugi", NOW).unwrap();
        let current = Arc::new(CurrentCase {
            record,
            seq: 1,
            change: 1,
        });
        assert!(raises_alert(&UnitCase::build(current.clone(), decision.clone(), None)));
        let mut narrow = decision;
        narrow.fields.remove(FieldPath::FlagsMissing);
        narrow.summary.remove(FieldPath::FlagsMissing);
        assert!(!raises_alert(&UnitCase::build(current.clone(), narrow.clone(), None)));
        // In the view but not in the summary the alert would carry: no alert either.
        narrow.fields.insert(FieldPath::FlagsMissing);
        assert!(!raises_alert(&UnitCase::build(current, narrow, None)));
    }

    #[tokio::test]
    async fn a_stream_that_falls_a_ring_behind_is_told_to_resume_and_others_are_not_held_up() {
        let settings = HubSettings {
            ring: 4,
            ..HubSettings::default()
        };
        let hub = Hub::start(
            Arc::new(ManualClock::new(NOW)),
            Arc::new(world()),
            Vec::new(),
            0,
            settings,
        );
        let mut slow = hub.subscribe("atsugi", None).events;
        let mut fast = hub.subscribe("atsugi", None).events;
        for i in 0..10 {
            hub.apply(Change::Case(current(&format!("C-{i}"), i + 1)));
            // The fast one keeps up; the hub never waited for the slow one.
            assert!(matches!(fast.recv().await.unwrap().event, UnitEvent::Case(_)));
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(_))));
        // Evaluated once per unit: every subscriber of a unit shares the same event.
        let mut a = hub.subscribe("hq", None).events;
        let mut b = hub.subscribe("hq", None).events;
        hub.apply(Change::Case(current("SHARED", 100)));
        let (x, y) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert!(Arc::ptr_eq(&x, &y));
    }
}
