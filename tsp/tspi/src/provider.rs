//! The provider: the in-library host, the mapping between TAPI's numbers and tapir's (device
//! ids, line and call handles, request ids), and every TSPI operation as a safe method.
//!
//! Handles: an HDRVLINE is a counter starting at 1, an HDRVCALL is tapir's call id (never 0).
//! A call handle stays valid until `TSPI_lineCloseCall`, whatever the call's state.
//!
//! Locking: one mutex over [`State`]. A request is handed to the front end *while* the lock
//! is held and its TAPI request id recorded before it is released, so the dispatcher (which
//! needs the lock to translate events) cannot see the completion before it knows whom to tell.
//! Callbacks are never invoked with the lock held: TAPI may call back into the provider from
//! inside a callback.

use crate::backend::Backend;
use crate::dispatch;
use crate::structs::{self, CallView};
use crate::TspiError;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::SystemTime;
use tapir_core::{AddressId, CallId, CallInfo, CallState, Forwarding, LineId, RequestId};
use tapir_tsp::tapi::{self, call_info_state, line_msg, value as v, version};
use tapir_tsp::{Action, Follower, LineSnapshot, Tsp};

/// TAPI's LINEEVENT callback.
pub type LineEventProc = extern "system" fn(usize, usize, u32, usize, usize, usize);
/// TAPI's ASYNC_COMPLETION callback.
pub type CompletionProc = extern "system" fn(u32, i32);

/// A callback waiting for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// A LINEEVENT for an open line; the TAPI call handle is looked up when it is sent.
    Line {
        /// The line handle.
        hd_line: usize,
        /// The call it concerns, if any.
        call: Option<CallId>,
        /// LINE_* message.
        msg: u32,
        /// dwParam1.
        p1: usize,
        /// dwParam2.
        p2: usize,
        /// dwParam3.
        p3: usize,
    },
    /// LINE_NEWCALL; TAPI writes its call handle back through dwParam2.
    NewCall {
        /// The line handle.
        hd_line: usize,
        /// The call.
        call: CallId,
    },
    /// ASYNC_COMPLETION.
    Completion {
        /// TAPI's request id.
        request: u32,
        /// 0 or a LINEERR.
        result: i32,
    },
    /// LINE_CREATE through the callback of providerEnumDevices.
    Create {
        /// The temporary id providerCreateLineDevice will name.
        temp: usize,
    },
    /// LINE_REMOVE through the callback of providerEnumDevices.
    Remove {
        /// The device id that is gone.
        device_id: u32,
    },
}

/// An open line.
#[derive(Debug, Clone)]
pub struct OpenLine {
    /// tapir's line.
    pub line: LineId,
    /// TAPI's device id.
    pub device_id: u32,
    /// TAPI's handle for it.
    pub ht_line: usize,
    /// Where its events go.
    pub event_proc: LineEventProc,
    /// The version it was opened with.
    pub version: u32,
    /// LINEDEVSTATE bits TAPI wants (lineSetStatusMessages); none at first.
    pub line_states: u32,
    /// LINEADDRESSSTATE bits TAPI wants; none at first.
    pub address_states: u32,
    /// The front end's last event number when lineSetStatusMessages last ran: events up to
    /// it happened before, and are filtered by `earlier_states`.
    pub states_from: u64,
    /// The (LINEDEVSTATE, LINEADDRESSSTATE) bits that held before that call.
    pub earlier_states: (u32, u32),
    /// The line was removed and LINE_CLOSE sent: no more events.
    pub gone: bool,
}

impl OpenLine {
    /// The (LINEDEVSTATE, LINEADDRESSSTATE) bits that apply to the front-end event numbered
    /// `seq`. A change that happened before the latest lineSetStatusMessages but reaches the
    /// dispatcher after it is judged by what TAPI wanted when it happened.
    pub fn status_masks(&self, seq: u64) -> (u32, u32) {
        if seq <= self.states_from {
            self.earlier_states
        } else {
            (self.line_states, self.address_states)
        }
    }
}

/// A call TAPI knows.
#[derive(Debug, Clone)]
pub struct CallRec {
    /// The line handle it belongs to.
    pub hd_line: usize,
    /// TAPI's handle (0 until LINE_NEWCALL returns for incoming calls).
    pub ht_call: usize,
    /// Its state as last reported.
    pub state: CallState,
    /// When it entered the state.
    pub entered: SystemTime,
    /// What is known.
    pub info: CallInfo,
    /// lineSetAppSpecific's value.
    pub app_specific: u32,
}

/// Everything behind the provider's lock.
#[derive(Default)]
pub struct State {
    /// dwLineDeviceIDBase, once providerInit ran.
    pub base: Option<u32>,
    /// Lines counted by providerEnumDevices, in device order.
    pub enumerated: Vec<LineId>,
    /// Device id → line.
    pub devices: BTreeMap<u32, LineId>,
    /// Line → device id.
    pub by_line: HashMap<LineId, u32>,
    /// LINE_CREATE sent, providerCreateLineDevice not yet called.
    pub pending_create: HashMap<usize, LineId>,
    next_temp: usize,
    /// Open lines by handle.
    pub open: BTreeMap<usize, OpenLine>,
    next_hd_line: usize,
    /// Calls by tapir id (= HDRVCALL).
    pub calls: HashMap<CallId, CallRec>,
    /// Accepted requests → TAPI's request id.
    pub requests: HashMap<RequestId, u32>,
    /// Callbacks for the dispatcher to send, in order.
    pub outbox: VecDeque<Callback>,
    /// ASYNC_COMPLETION.
    pub completion: Option<CompletionProc>,
    /// The LINEEVENT for LINE_CREATE / LINE_REMOVE.
    pub line_create: Option<LineEventProc>,
    /// providerEnumDevices' hProvider, sent back with LINE_CREATE.
    pub h_provider: usize,
}

impl State {
    /// The open lines serving `line`.
    pub fn opens_of(&self, line: LineId) -> Vec<usize> {
        self.open
            .iter()
            .filter(|(_, o)| o.line == line && !o.gone)
            .map(|(hd, _)| *hd)
            .collect()
    }

    /// A fresh temporary id for LINE_CREATE.
    pub fn next_temp(&mut self) -> usize {
        self.next_temp += 1;
        self.next_temp
    }

    fn open_line(&self, hd_line: usize) -> Result<&OpenLine, TspiError> {
        self.open
            .get(&hd_line)
            .filter(|o| !o.gone)
            .ok_or(TspiError::InvalidLineHandle)
    }

    fn call(&self, hd_call: usize) -> Result<(CallId, &CallRec), TspiError> {
        let id = CallId(hd_call as u64);
        self.calls
            .get(&id)
            .map(|c| (id, c))
            .ok_or(TspiError::InvalidCallHandle)
    }

    fn line_states(&self, hd_line: usize) -> Vec<CallState> {
        self.calls
            .values()
            .filter(|c| c.hd_line == hd_line)
            .map(|c| c.state)
            .collect()
    }
}

/// A running provider: the host inside the library and the state TAPI sees.
pub struct Provider {
    state: Mutex<State>,
    host: Backend,
    events: Mutex<Option<Follower>>,
    stop: AtomicBool,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

static CURRENT: Mutex<Option<Arc<Provider>>> = Mutex::new(None);

fn current_slot() -> MutexGuard<'static, Option<Arc<Provider>>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running provider.
///
/// # Errors
/// [`TspiError::Uninitialized`] before providerEnumDevices or after providerShutdown.
pub fn current() -> Result<Arc<Provider>, TspiError> {
    current_slot().clone().ok_or(TspiError::Uninitialized)
}

/// `TSPI_lineNegotiateTSPIVersion`.
///
/// # Errors
/// Incompatible versions; an unknown device id.
pub fn negotiate(device_id: u32, low: u32, high: u32) -> Result<u32, TspiError> {
    if device_id != version::INITIALIZE_NEGOTIATION {
        let provider = current()?;
        let st = provider.lock();
        if !st.devices.contains_key(&device_id) {
            return Err(TspiError::BadDeviceId);
        }
    }
    crate::version::negotiate(low, high)
}

/// `TSPI_providerEnumDevices`: starts the host (once) and counts its lines.
///
/// # Errors
/// [`TspiError::NoDevice`] when the configuration is missing or refused.
pub fn enum_devices(
    h_provider: usize,
    line_create: Option<LineEventProc>,
) -> Result<u32, TspiError> {
    let mut slot = current_slot();
    let provider = match slot.as_ref() {
        Some(p) => Arc::clone(p),
        None => {
            let host = crate::config::start().map_err(|error| {
                tracing::error!(%error, "The TSP cannot start its host.");
                TspiError::NoDevice
            })?;
            let p = Arc::new(Provider::new(host));
            *slot = Some(Arc::clone(&p));
            p
        }
    };
    drop(slot);
    let mut st = provider.lock();
    st.h_provider = h_provider;
    st.line_create = line_create;
    Ok(st.enumerated.len() as u32)
}

/// `TSPI_providerInit`: numbers the enumerated lines from `base` and starts the dispatcher.
///
/// # Errors
/// [`TspiError::IncompatibleApiVersion`]; [`TspiError::NoDevice`] without a host.
pub fn init(
    tspi_version: u32,
    base: u32,
    completion: Option<CompletionProc>,
) -> Result<(), TspiError> {
    // TAPI passes the negotiated version; a newer one is served as 2.2, an older one refused.
    if tspi_version < crate::version::LOWEST {
        return Err(TspiError::IncompatibleApiVersion);
    }
    // TAPI always enumerates first; a caller that does not still gets a host.
    if current().is_err() {
        enum_devices(0, None)?;
    }
    let provider = current()?;
    {
        let mut st = provider.lock();
        st.base = Some(base);
        st.completion = completion;
        let enumerated = st.enumerated.clone();
        for (i, line) in enumerated.into_iter().enumerate() {
            let device = base.wrapping_add(i as u32);
            st.devices.insert(device, line);
            st.by_line.insert(line, device);
        }
    }
    let events = provider
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(events) = events {
        let handle = dispatch::spawn(Arc::clone(&provider), events)
            .map_err(|_| TspiError::OperationFailed)?;
        *provider
            .dispatcher
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }
    Ok(())
}

/// `TSPI_providerShutdown`: stops the drivers, sends what is still due, stops the dispatcher
/// and forgets everything. No callback follows its return.
pub fn shutdown() {
    let Some(provider) = current_slot().take() else {
        return;
    };
    provider.stop_all();
}

impl Provider {
    /// A provider over a started host (or remote link); its lines are counted now.
    pub fn new(host: impl Into<Backend>) -> Self {
        let host = host.into();
        let events = host.tsp().follow();
        let enumerated = host.tsp().lines().iter().map(|l| l.id).collect();
        Self {
            state: Mutex::new(State {
                enumerated,
                ..State::default()
            }),
            host,
            events: Mutex::new(Some(events)),
            stop: AtomicBool::new(false),
            dispatcher: Mutex::new(None),
        }
    }

    /// The provider's state.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert or remove: the tables stay usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The front end.
    pub fn tsp(&self) -> &Arc<Tsp> {
        self.host.tsp()
    }

    /// Whether the dispatcher should stop once nothing is left to send.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn stop_all(&self) {
        self.host.shutdown();
        self.stop.store(true, Ordering::SeqCst);
        let handle = self
            .dispatcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.thread().id() == std::thread::current().id() {
                tracing::warn!("providerShutdown called from a callback; not waiting for it.");
            } else if handle.join().is_err() {
                tracing::error!("The TSP's dispatcher thread panicked.");
            }
        }
        let mut st = self.lock();
        st.completion = None;
        st.line_create = None;
        st.outbox.clear();
        st.open.clear();
        st.calls.clear();
        st.requests.clear();
    }

    fn line_of_device(&self, st: &State, device_id: u32) -> Result<LineSnapshot, TspiError> {
        let line = st.devices.get(&device_id).ok_or(TspiError::BadDeviceId)?;
        self.tsp().line(*line).ok_or(TspiError::NoDevice)
    }

    fn snapshot(&self, line: LineId) -> Result<LineSnapshot, TspiError> {
        self.tsp().line(line).ok_or(TspiError::NoDevice)
    }

    /// Hands an action to the front end and records TAPI's request id, under the lock.
    fn submit(
        &self,
        st: &mut State,
        request: u32,
        action: Action,
    ) -> Result<Option<CallId>, TspiError> {
        let accepted = self.tsp().submit(action)?;
        st.requests.insert(accepted.request, request);
        Ok(accepted.call)
    }

    fn new_call(st: &mut State, call: CallId, hd_line: usize, ht_call: usize) {
        st.calls.insert(
            call,
            CallRec {
                hd_line,
                ht_call,
                state: CallState::Unknown,
                entered: SystemTime::now(),
                info: CallInfo {
                    direction: tapir_core::CallDirection::Outgoing,
                    ..CallInfo::default()
                },
                app_specific: 0,
            },
        );
    }

    /// `TSPI_lineGetDevCaps`.
    ///
    /// # Errors
    /// Bad device id, structure too small.
    pub fn get_dev_caps(
        &self,
        device_id: u32,
        version: u32,
        buf: &mut [u8],
    ) -> Result<(), TspiError> {
        let line = self.line_of_device(&self.lock(), device_id)?;
        structs::dev_caps(buf, version, &line)
    }

    /// `TSPI_lineGetAddressCaps`.
    ///
    /// # Errors
    /// Bad device or address id, structure too small.
    pub fn get_address_caps(
        &self,
        device_id: u32,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), TspiError> {
        let line = self.line_of_device(&self.lock(), device_id)?;
        structs::address_caps(buf, device_id, AddressId(address), &line)
    }

    /// `TSPI_lineOpen`: returns the line handle.
    ///
    /// # Errors
    /// Bad device id; no callback.
    pub fn open(
        &self,
        device_id: u32,
        ht_line: usize,
        version: u32,
        event_proc: Option<LineEventProc>,
    ) -> Result<usize, TspiError> {
        let event_proc = event_proc.ok_or(TspiError::InvalidPointer)?;
        let mut st = self.lock();
        let line = *st.devices.get(&device_id).ok_or(TspiError::BadDeviceId)?;
        self.tsp().open_line(line)?;
        st.next_hd_line += 1;
        let hd = st.next_hd_line;
        st.open.insert(
            hd,
            OpenLine {
                line,
                device_id,
                ht_line,
                event_proc,
                version,
                line_states: 0,
                address_states: 0,
                states_from: 0,
                earlier_states: (0, 0),
                gone: false,
            },
        );
        Ok(hd)
    }

    /// `TSPI_lineClose`: drops the line's calls (LINEDEVCAPFLAGS_CLOSEDROP) and forgets them.
    ///
    /// # Errors
    /// Unknown line handle.
    pub fn close(&self, hd_line: usize) -> Result<(), TspiError> {
        let mut st = self.lock();
        let open = st
            .open
            .remove(&hd_line)
            .ok_or(TspiError::InvalidLineHandle)?;
        let calls: Vec<CallId> = st
            .calls
            .iter()
            .filter(|(_, c)| c.hd_line == hd_line)
            .map(|(id, _)| *id)
            .collect();
        for call in calls {
            st.calls.remove(&call);
            let _ = self.tsp().close_call(call);
        }
        st.outbox.retain(|cb| match cb {
            Callback::Line { hd_line: h, .. } | Callback::NewCall { hd_line: h, .. } => {
                *h != hd_line
            }
            _ => true,
        });
        if !open.gone {
            // A removed line is closed in the front end already.
            let _ = self.tsp().close_line(open.line);
        }
        Ok(())
    }

    /// `TSPI_lineSetStatusMessages`.
    ///
    /// # Errors
    /// Unknown line handle.
    pub fn set_status_messages(
        &self,
        hd_line: usize,
        line_states: u32,
        address_states: u32,
    ) -> Result<(), TspiError> {
        let mut st = self.lock();
        let open = st
            .open
            .get_mut(&hd_line)
            .ok_or(TspiError::InvalidLineHandle)?;
        open.earlier_states = (open.line_states, open.address_states);
        open.line_states = line_states;
        open.address_states = address_states;
        // The front end numbers an event under the same lock under which it updates what the
        // snapshots show, so every change TAPI could have seen so far is numbered up to here.
        open.states_from = self.tsp().last_seq();
        Ok(())
    }

    /// `TSPI_lineMakeCall`: hands the new call's handle to `publish` before the request can
    /// complete (TAPI wants `*lphdCall` written before the function returns).
    ///
    /// # Errors
    /// Refused at once: no completion follows.
    pub fn make_call(
        &self,
        request: u32,
        hd_line: usize,
        ht_call: usize,
        destination: Option<String>,
        publish: impl FnOnce(usize),
    ) -> Result<(), TspiError> {
        let mut st = self.lock();
        let line = st.open_line(hd_line)?.line;
        let address = self
            .snapshot(line)?
            .caps
            .addresses
            .first()
            .map(|a| a.id)
            .unwrap_or_default();
        let destination = destination.filter(|d| !d.is_empty());
        let call = self
            .submit(
                &mut st,
                request,
                Action::MakeCall {
                    line,
                    address,
                    destination,
                },
            )?
            .ok_or(TspiError::OperationFailed)?;
        Self::new_call(&mut st, call, hd_line, ht_call);
        // Written while the lock is held: before the completion can be sent.
        publish(call.0 as usize);
        Ok(())
    }

    /// Any request on one existing call (drop, answer, hold, unhold, redirect, blind transfer,
    /// dial).
    ///
    /// # Errors
    /// Refused at once: no completion follows.
    pub fn call_request(
        &self,
        request: u32,
        hd_call: usize,
        action: impl FnOnce(CallId) -> Action,
    ) -> Result<(), TspiError> {
        let mut st = self.lock();
        let (call, _) = st.call(hd_call)?;
        self.submit(&mut st, request, action(call))?;
        Ok(())
    }

    /// `TSPI_lineSetupTransfer`: hands the consultation call's handle to `publish`.
    ///
    /// # Errors
    /// Refused at once.
    pub fn setup_transfer(
        &self,
        request: u32,
        hd_call: usize,
        ht_consult: usize,
        publish: impl FnOnce(usize),
    ) -> Result<(), TspiError> {
        let mut st = self.lock();
        let (call, rec) = st.call(hd_call)?;
        let hd_line = rec.hd_line;
        let consult = self
            .submit(&mut st, request, Action::SetupTransfer { call })?
            .ok_or(TspiError::OperationFailed)?;
        Self::new_call(&mut st, consult, hd_line, ht_consult);
        publish(consult.0 as usize);
        Ok(())
    }

    /// `TSPI_lineCompleteTransfer` (LINETRANSFERMODE_TRANSFER only).
    ///
    /// # Errors
    /// Refused at once; conference mode is [`TspiError::InvalidTransferMode`].
    pub fn complete_transfer(
        &self,
        request: u32,
        hd_call: usize,
        hd_consult: usize,
        mode: u32,
    ) -> Result<(), TspiError> {
        if mode != v::TRANSFERMODE_TRANSFER {
            return Err(TspiError::InvalidTransferMode);
        }
        let mut st = self.lock();
        let (call, _) = st.call(hd_call)?;
        let (consult, _) = st
            .call(hd_consult)
            .map_err(|_| TspiError::Driver(tapir_core::ErrorKind::InvalidConsultCallHandle))?;
        self.submit(&mut st, request, Action::CompleteTransfer { call, consult })?;
        Ok(())
    }

    /// `TSPI_lineSwapHold`.
    ///
    /// # Errors
    /// Refused at once.
    pub fn swap_hold(
        &self,
        request: u32,
        hd_active: usize,
        hd_held: usize,
    ) -> Result<(), TspiError> {
        let mut st = self.lock();
        let (active, _) = st.call(hd_active)?;
        let (held, _) = st
            .call(hd_held)
            .map_err(|_| TspiError::Driver(tapir_core::ErrorKind::InvalidConsultCallHandle))?;
        self.submit(&mut st, request, Action::SwapHold { active, held })?;
        Ok(())
    }

    /// `TSPI_lineForward`: `None` or no entries cancels forwarding; one entry sets it; an entry
    /// with an empty destination switches do-not-disturb on.
    ///
    /// # Errors
    /// Refused at once.
    pub fn forward(
        &self,
        request: u32,
        hd_line: usize,
        all_addresses: bool,
        address: u32,
        entries: Option<Vec<(u32, String)>>,
    ) -> Result<(), TspiError> {
        let mut st = self.lock();
        let line = st.open_line(hd_line)?.line;
        let snapshot = self.snapshot(line)?;
        let address = if all_addresses {
            snapshot
                .caps
                .addresses
                .first()
                .map(|a| a.id)
                .unwrap_or_default()
        } else {
            AddressId(address)
        };
        let entries = entries.unwrap_or_default();
        let action = match entries.as_slice() {
            [] => Action::Forward {
                line,
                address,
                forward: None,
            },
            [(_, dest)] if dest.is_empty() => Action::SetDoNotDisturb {
                line,
                address,
                enabled: true,
            },
            [(mode, dest)] => Action::Forward {
                line,
                address,
                forward: Some(Forwarding {
                    mode: tapi::forward_mode_from(*mode).ok_or(TspiError::InvalidParam)?,
                    destination: dest.clone(),
                }),
            },
            _ => return Err(TspiError::InvalidParam),
        };
        self.submit(&mut st, request, action)?;
        Ok(())
    }

    /// `TSPI_lineCloseCall`: the handle is invalid afterwards; a call still up is dropped.
    ///
    /// # Errors
    /// Unknown call handle.
    pub fn close_call(&self, hd_call: usize) -> Result<(), TspiError> {
        let mut st = self.lock();
        let (call, _) = st.call(hd_call)?;
        st.calls.remove(&call);
        st.outbox.retain(|cb| match cb {
            Callback::Line { call: Some(c), .. } | Callback::NewCall { call: c, .. } => *c != call,
            _ => true,
        });
        // The front end may have forgotten it already (line removed); that is no error here.
        let _ = self.tsp().close_call(call);
        Ok(())
    }

    fn with_call<R>(
        &self,
        hd_call: usize,
        f: impl FnOnce(&CallView<'_>) -> Result<R, TspiError>,
    ) -> Result<R, TspiError> {
        let st = self.lock();
        let (call, rec) = st.call(hd_call)?;
        let open = st
            .open
            .get(&rec.hd_line)
            .ok_or(TspiError::InvalidCallHandle)?;
        // A removed line's calls keep answering (as Idle) until lineCloseCall.
        let caps = self
            .tsp()
            .line(open.line)
            .map(|l| l.caps)
            .unwrap_or_default();
        let view = CallView {
            device_id: open.device_id,
            call_id: call.0 as u32,
            state: rec.state,
            entered: rec.entered,
            info: &rec.info,
            app_specific: rec.app_specific,
            caps: &caps,
        };
        f(&view)
    }

    /// `TSPI_lineGetCallInfo`.
    ///
    /// # Errors
    /// Unknown call, structure too small.
    pub fn get_call_info(&self, hd_call: usize, buf: &mut [u8]) -> Result<(), TspiError> {
        self.with_call(hd_call, |view| structs::call_info(buf, view))
    }

    /// `TSPI_lineGetCallStatus`.
    ///
    /// # Errors
    /// Unknown call, structure too small.
    pub fn get_call_status(&self, hd_call: usize, buf: &mut [u8]) -> Result<(), TspiError> {
        self.with_call(hd_call, |view| structs::call_status(buf, view))
    }

    /// `TSPI_lineGetCallAddressID`.
    ///
    /// # Errors
    /// Unknown call.
    pub fn get_call_address_id(&self, hd_call: usize) -> Result<u32, TspiError> {
        self.with_call(hd_call, |view| Ok(view.info.address.0))
    }

    /// `TSPI_lineGetCallIDs`: (address id, call id, related call id).
    ///
    /// # Errors
    /// Unknown call.
    pub fn get_call_ids(&self, hd_call: usize) -> Result<(u32, u32, u32), TspiError> {
        self.with_call(hd_call, |view| Ok((view.info.address.0, view.call_id, 0)))
    }

    /// `TSPI_lineSetAppSpecific`; LINE_CALLINFO(APPSPECIFIC) follows.
    ///
    /// # Errors
    /// Unknown call.
    pub fn set_app_specific(&self, hd_call: usize, value: u32) -> Result<(), TspiError> {
        let mut st = self.lock();
        let (call, _) = st.call(hd_call)?;
        let Some(rec) = st.calls.get_mut(&call) else {
            return Err(TspiError::InvalidCallHandle);
        };
        rec.app_specific = value;
        let (hd_line, idle) = (rec.hd_line, rec.state.is_idle());
        if !idle {
            st.outbox.push_back(Callback::Line {
                hd_line,
                call: Some(call),
                msg: line_msg::CALLINFO,
                p1: call_info_state::APPSPECIFIC as usize,
                p2: 0,
                p3: 0,
            });
        }
        Ok(())
    }

    /// `TSPI_lineGetAddressStatus`.
    ///
    /// # Errors
    /// Unknown line or address, structure too small.
    pub fn get_address_status(
        &self,
        hd_line: usize,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), TspiError> {
        let st = self.lock();
        let line = self.snapshot(st.open_line(hd_line)?.line)?;
        let address = AddressId(address);
        if !line.caps.has_address(address) {
            return Err(TspiError::InvalidAddressId);
        }
        let calls: Vec<CallState> = st
            .calls
            .values()
            .filter(|c| c.hd_line == hd_line && c.info.address == address)
            .map(|c| c.state)
            .collect();
        structs::address_status(buf, &line, &calls, line.addresses.get(&address))
    }

    /// `TSPI_lineGetLineDevStatus`.
    ///
    /// # Errors
    /// Unknown line, structure too small.
    pub fn get_line_dev_status(&self, hd_line: usize, buf: &mut [u8]) -> Result<(), TspiError> {
        let st = self.lock();
        let line = self.snapshot(st.open_line(hd_line)?.line)?;
        structs::line_dev_status(buf, &line, &st.line_states(hd_line))
    }

    /// `TSPI_lineGetNumAddressIDs`.
    ///
    /// # Errors
    /// Unknown line.
    pub fn num_address_ids(&self, hd_line: usize) -> Result<u32, TspiError> {
        let st = self.lock();
        let line = self.snapshot(st.open_line(hd_line)?.line)?;
        Ok(line.caps.addresses.len() as u32)
    }

    /// `TSPI_lineGetAddressID`: the address with this dialable number.
    ///
    /// # Errors
    /// Unknown line, address mode other than DIALABLEADDR, no such address.
    pub fn address_id(&self, hd_line: usize, mode: u32, address: &str) -> Result<u32, TspiError> {
        if mode != v::ADDRESSMODE_DIALABLEADDR {
            return Err(TspiError::InvalidAddressMode);
        }
        let st = self.lock();
        let line = self.snapshot(st.open_line(hd_line)?.line)?;
        line.caps
            .addresses
            .iter()
            .find(|a| a.number == address)
            .map(|a| a.id.0)
            .ok_or(TspiError::InvalidAddress)
    }

    /// `TSPI_lineSetDefaultMediaDetection` / `TSPI_lineConditionalMediaDetection`: tapir's
    /// lines carry interactive voice only.
    ///
    /// # Errors
    /// Unknown line, other media modes.
    pub fn media_detection(&self, hd_line: usize, modes: u32) -> Result<(), TspiError> {
        self.lock().open_line(hd_line)?;
        if modes & !(v::MEDIAMODE_INTERACTIVEVOICE | v::MEDIAMODE_UNKNOWN) != 0 {
            return Err(TspiError::InvalidMediaMode);
        }
        Ok(())
    }

    /// `TSPI_providerCreateLineDevice`: binds a line announced with LINE_CREATE to its id.
    ///
    /// # Errors
    /// Unknown temporary id.
    pub fn create_line_device(&self, temp: usize, device_id: u32) -> Result<(), TspiError> {
        let mut st = self.lock();
        let line = st
            .pending_create
            .remove(&temp)
            .ok_or(TspiError::BadDeviceId)?;
        st.devices.insert(device_id, line);
        st.by_line.insert(line, device_id);
        Ok(())
    }

    /// Whether the device id names a line (for the functions that only check it).
    ///
    /// # Errors
    /// Bad device id.
    pub fn check_device(&self, device_id: u32) -> Result<(), TspiError> {
        let st = self.lock();
        self.line_of_device(&st, device_id).map(|_| ())
    }

    /// Whether the handle names an open line.
    ///
    /// # Errors
    /// Unknown line handle.
    pub fn check_line(&self, hd_line: usize) -> Result<(), TspiError> {
        self.lock().open_line(hd_line).map(|_| ())
    }

    /// Whether the handle names a call.
    ///
    /// # Errors
    /// Unknown call handle.
    pub fn check_call(&self, hd_call: usize) -> Result<(), TspiError> {
        self.lock().call(hd_call).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_host::catalog::Catalog;
    use tapir_host::config::Config;
    use tapir_host::embedded::Embedded;

    extern "system" fn ignore(_: usize, _: usize, _: u32, _: usize, _: usize, _: usize) {}

    /// A provider over a host without drivers: only the argument checks can be exercised.
    fn empty_provider() -> Provider {
        let mut config = Config::empty();
        config.phones.enabled = false;
        Provider::new(Embedded::start(config, &Catalog::load(None)))
    }

    #[test]
    fn unknown_devices_and_handles_are_refused() {
        let p = empty_provider();
        assert_eq!(p.lock().enumerated.len(), 0);
        assert_eq!(
            p.open(0, 1, version::TAPI_2_2, Some(ignore)),
            Err(TspiError::BadDeviceId)
        );
        assert_eq!(p.close(1), Err(TspiError::InvalidLineHandle));
        assert_eq!(
            p.make_call(5, 1, 2, Some("200".into()), |_| {}),
            Err(TspiError::InvalidLineHandle)
        );
        assert_eq!(
            p.call_request(6, 42, |call| Action::Drop { call }),
            Err(TspiError::InvalidCallHandle)
        );
        assert_eq!(p.close_call(42), Err(TspiError::InvalidCallHandle));
        assert_eq!(
            p.complete_transfer(7, 1, 2, 2),
            Err(TspiError::InvalidTransferMode)
        );
        let mut buf = vec![0u8; 512];
        assert_eq!(
            p.get_dev_caps(3, version::TAPI_2_2, &mut buf),
            Err(TspiError::BadDeviceId)
        );
        assert!(
            p.lock().requests.is_empty(),
            "nothing refused is waiting for completion"
        );
        p.stop_all();
    }

    #[test]
    fn created_lines_are_bound_to_the_id_tapi_gives() {
        let p = empty_provider();
        let temp = {
            let mut st = p.lock();
            let temp = st.next_temp();
            st.pending_create.insert(temp, LineId(9));
            temp
        };
        assert_eq!(
            p.create_line_device(temp + 1, 30),
            Err(TspiError::BadDeviceId)
        );
        assert_eq!(p.create_line_device(temp, 30), Ok(()));
        assert_eq!(p.lock().devices.get(&30), Some(&LineId(9)));
        assert_eq!(p.create_line_device(temp, 31), Err(TspiError::BadDeviceId));
        p.stop_all();
    }
}
