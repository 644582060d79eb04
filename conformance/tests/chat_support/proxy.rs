//! stub
pub struct FaultProxy;
