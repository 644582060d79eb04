//! stub
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    None,
}
