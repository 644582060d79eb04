//! The fault proxy (to come).

/// One deliberate fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A transparent proxy.
    None,
}

/// A proxy applying one fault.
pub struct FaultProxy;
