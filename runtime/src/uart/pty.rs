//! A pseudo-terminal standing in for a serial port: the simulator holds the
//! master side, a gateway opens the slave through a stable symlink as it
//! would open `/dev/ttyUSB0`.
//!
//! [`Pty::open`] makes the pair with `openpty`, puts both sides in raw mode
//! (`cfmakeraw`: no echo, no line editing, no CR/LF mapping, no flow-control
//! bytes, all 8 bits kept), links the slave's path (`/dev/pts/N`) at the
//! requested path and returns the master as non-blocking tokio I/O
//! ([`AsyncRead`] + [`AsyncWrite`]; split it with [`tokio::io::split`]).
//!
//! The slave stays open inside [`Pty`] for its whole life. On Linux a
//! master whose slave nobody holds reads `EIO` (and polls as hung up), so
//! without that the simulator would see an error every time a gateway
//! closed the port, and spin while none had it open. Holding it means a
//! gateway may open and close the link as often as it likes. The cost:
//! bytes written while no gateway has the port open wait in the kernel's
//! tty buffer (tens of KiB) and reach the next gateway that opens it, as
//! bytes sent before a real port was opened would not; a gateway that wants
//! a clean start flushes its input after opening (`tcflush(TCIFLUSH)`,
//! serialport's `clear(ClearBuffer::Input)`; pyserial does it on every
//! open, the serialport crate does not on Linux), and must resynchronise on
//! the next frame start anyway. Should `EIO` still happen, it is taken as "nobody there yet":
//! reads wait and retry, writes are discarded (as a line with nothing on
//! the other end would).
//!
//! Holding the slave has one more consequence, taken care of here: a
//! gateway that opens the port exclusively (`TIOCEXCL`, the `serialport`
//! crate's default) would leave it exclusive after closing it, since the
//! kernel clears that flag only at the tty's last close, and the next
//! non-root open would fail with `EBUSY`. On Linux the pty watches its
//! slave with inotify and clears the flag (`TIOCNXCL`) as soon as an opener
//! has closed it: a gateway reopening within a millisecond of its close may
//! still meet `EBUSY` once; one that waits a moment (as a reconnect does)
//! does not.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use specwire_runtime::uart::Pty;
//!
//! let mut pty = Pty::open("/tmp/uart-module".as_ref())?;
//! println!("a gateway opens {} (really {})", pty.link().display(), pty.tty_path().display());
//! pty.write_all(&[0xFF, b'M', 0x00, 0x00, 0x01, 0xFE]).await?;
//! let mut buf = [0u8; 256];
//! let n = pty.read(&mut buf).await?; // what the gateway wrote
//! # let _ = n; Ok(()) }
//! ```
//!
//! Dropping the [`Pty`] closes both sides and removes the link (only if it
//! still points at this pty, so a newer simulator's link survives).

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a read waits before trying again after `EIO` (nobody holds the
/// slave; cannot happen while [`Pty`] holds it, kept as a safety net).
const EIO_RETRY: Duration = Duration::from_millis(50);

/// A pseudo-terminal: the master as async I/O, the slave held open and
/// reachable at a symlink.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held so that the master never sees the slave closed (see the module docs).
    _slave: OwnedFd,
    tty_path: PathBuf,
    link: PathBuf,
    /// Set while a read waits out an `EIO`.
    eio_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Closes of the slave by others (see the module docs); `None` where
    /// inotify is missing or failed.
    closes: Option<AsyncFd<CloseWatch>>,
}

impl Pty {
    /// Opens a pty pair, both sides raw, and links the slave's path at
    /// `link`. An existing symlink at `link` is replaced (a stale link
    /// from an earlier run); anything else there (a regular file, a
    /// directory, a device) is refused with [`io::ErrorKind::AlreadyExists`].
    ///
    /// Must run inside a tokio runtime (the master registers with its
    /// reactor).
    pub fn open(link: &Path) -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        for fd in [&pair.master, &pair.slave] {
            make_raw(fd)?;
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
        }
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        let tty_path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        place_link(&tty_path, link)?;
        // SAFETY: the `OwnedFd` is open and owned by the `AsyncFd` from here
        // on; nothing closes or replaces it while registered (only shared
        // references to it are ever taken), so it names the same open file
        // description until the `AsyncFd` drops.
        let master = match unsafe { AsyncFd::register(pair.master) } {
            Ok(master) => master,
            Err(error) => {
                remove_link_if_ours(link, &tty_path);
                return Err(error.into_parts().1);
            }
        };
        Ok(Pty {
            master,
            closes: CloseWatch::start(&tty_path),
            _slave: pair.slave,
            tty_path,
            link: link.to_path_buf(),
            eio_wait: None,
        })
    }

    /// The symlink a gateway opens.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The slave's own path (`/dev/pts/N`), where the link points.
    pub fn tty_path(&self) -> &Path {
        &self.tty_path
    }
}

impl Pty {
    /// Clears a departed gateway's exclusive mode once per batch of
    /// closes; registers for the next close while none is pending.
    fn clear_exclusive_after_closes(&mut self, cx: &mut Context<'_>) {
        let Some(closes) = &self.closes else { return };
        loop {
            let Poll::Ready(Ok(mut guard)) = closes.poll_read_ready(cx) else {
                return;
            };
            match guard.try_io(|watch| watch.get_ref().closed()) {
                Ok(Ok(true)) => clear_exclusive(&self._slave),
                Ok(Ok(false)) => {}
                Ok(Err(_)) => {
                    // Stop watching rather than fail the line.
                    self.closes = None;
                    return;
                }
                Err(_would_block) => {}
            }
        }
    }
}

/// `TIOCNXCL` on the slave: anyone may open it again.
fn clear_exclusive(slave: &OwnedFd) {
    // SAFETY: TIOCNXCL takes no argument and `slave` is an open tty we own;
    // failure only leaves the flag as it was.
    unsafe {
        nix::libc::ioctl(slave.as_raw_fd(), nix::libc::TIOCNXCL);
    }
}

/// An inotify watch for closes of the slave.
#[derive(Debug)]
struct CloseWatch(nix::sys::inotify::Inotify);

impl AsRawFd for CloseWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl CloseWatch {
    /// Watches `tty_path`, or `None` where that cannot be done.
    fn start(tty_path: &Path) -> Option<AsyncFd<CloseWatch>> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let closes = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_CLOSE_NOWRITE;
        inotify.add_watch(tty_path, closes).ok()?;
        // SAFETY: the inotify descriptor is open and owned by the `AsyncFd`
        // from here on; nothing closes or replaces it while registered.
        unsafe { AsyncFd::register(CloseWatch(inotify)) }.ok()
    }

    /// Whether any close was reported since the last call (`WouldBlock`
    /// when nothing is queued).
    fn closed(&self) -> io::Result<bool> {
        self.0
            .read_events()
            .map(|events| !events.is_empty())
            .map_err(io::Error::from)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        remove_link_if_ours(&self.link, &self.tty_path);
    }
}

/// `cfmakeraw` on one side of the pair.
fn make_raw(fd: impl AsFd) -> io::Result<()> {
    let mut termios = tcgetattr(&fd).map_err(io::Error::from)?;
    cfmakeraw(&mut termios);
    tcsetattr(&fd, SetArg::TCSANOW, &termios).map_err(io::Error::from)
}

/// Makes `link` a symlink to `target`, replacing a symlink already there
/// (atomically, by renaming a fresh link over it) and refusing anything
/// else.
fn place_link(target: &Path, link: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a symlink; refusing to replace it with the pty link",
                    link.display()
                ),
            ));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let name = link.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", link.display()),
        )
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = link.with_file_name(temporary_name);
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)?;
    std::fs::rename(&temporary, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Removes `link` if it is still a symlink to `target`.
fn remove_link_if_ours(link: &Path, target: &Path) {
    if std::fs::read_link(link).is_ok_and(|points_to| points_to == target) {
        let _ = std::fs::remove_file(link);
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.clear_exclusive_after_closes(cx);
        loop {
            if let Some(wait) = this.eio_wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                this.eio_wait = None;
            }
            let mut guard = ready!(this.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|master| {
                nix::unistd::read(master.get_ref(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) if error.raw_os_error() == Some(Errno::EIO as i32) => {
                    // Nobody holds the slave: wait, then look again.
                    guard.clear_ready();
                    this.eio_wait = Some(Box::pin(tokio::time::sleep(EIO_RETRY)));
                }
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.master.poll_write_ready(cx))?;
            match guard
                .try_io(|master| nix::unistd::write(master.get_ref(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                // Nobody on the other end: the bytes go nowhere, as on a bare line.
                Ok(Err(error)) if error.raw_os_error() == Some(Errno::EIO as i32) => {
                    return Poll::Ready(Ok(buf.len()))
                }
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the kernel; there is nothing of ours to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_pass_both_ways_unchanged_and_the_link_goes_on_drop() {
        let dir = specwire_testsupport::temp_dir();
        let link = dir.path().join("tty");
        let mut pty = Pty::open(&link).expect("open a pty");
        assert_eq!(std::fs::read_link(&link).expect("a link"), pty.tty_path());
        let mut port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&link)
            .expect("open the link");
        // Every byte value, including CR, LF, XON/XOFF and the frame bytes.
        let all: Vec<u8> = (0..=255).collect();
        port.write_all(&all).expect("write to the slave");
        let mut got = Vec::new();
        while got.len() < all.len() {
            let mut buf = [0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(5), pty.read(&mut buf))
                .await
                .expect("bytes from the slave")
                .expect("read");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, all);
        pty.write_all(&all).await.expect("write to the master");
        let mut back = vec![0u8; all.len()];
        port.read_exact(&mut back).expect("read from the slave");
        assert_eq!(back, all);
        // The gateway closes and reopens: the master carries on.
        drop(port);
        let mut port = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&link)
            .expect("reopen the link");
        port.write_all(b"again").expect("write again");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), pty.read(&mut buf))
            .await
            .expect("bytes after a reopen")
            .expect("read");
        assert_eq!(&buf[..n], b"again");
        drop(pty);
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "the link is removed"
        );
    }

    #[tokio::test]
    async fn a_gateways_exclusive_mode_ends_when_it_closes_the_port() {
        use std::os::fd::AsRawFd;
        let dir = specwire_testsupport::temp_dir();
        let link = dir.path().join("tty");
        let mut pty = Pty::open(&link).expect("open a pty");
        let exclusive = |port: &std::fs::File| {
            let mut flag: nix::libc::c_int = 0;
            // SAFETY: TIOCGEXCL writes one int to the pointer given.
            let status =
                unsafe { nix::libc::ioctl(port.as_raw_fd(), nix::libc::TIOCGEXCL, &mut flag) };
            assert_eq!(status, 0, "TIOCGEXCL");
            flag != 0
        };
        let open = || {
            std::fs::File::options()
                .read(true)
                .write(true)
                .open(&link)
                .expect("open the link")
        };
        let gateway = open();
        // SAFETY: TIOCEXCL takes no argument.
        assert_eq!(
            unsafe { nix::libc::ioctl(gateway.as_raw_fd(), nix::libc::TIOCEXCL) },
            0
        );
        assert!(exclusive(&gateway));
        drop(gateway);
        // Root may open an exclusive tty anyway: the next gateway, as root.
        let mut next = open();
        next.write_all(b"x").expect("write");
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), pty.read(&mut buf))
            .await
            .expect("a byte")
            .expect("read");
        assert!(
            !exclusive(&next),
            "the departed gateway's TIOCEXCL is cleared"
        );
    }

    #[tokio::test]
    async fn a_stale_link_is_replaced_and_a_regular_file_is_not() {
        let dir = specwire_testsupport::temp_dir();
        let link = dir.path().join("tty");
        std::os::unix::fs::symlink("/nonexistent/pts/99", &link).expect("a stale link");
        let pty = Pty::open(&link).expect("replace the stale link");
        assert_eq!(std::fs::read_link(&link).expect("a link"), pty.tty_path());
        drop(pty);
        let file = dir.path().join("file");
        std::fs::write(&file, "keep me").expect("a regular file");
        let error = Pty::open(&file).expect_err("a regular file is not replaced");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read_to_string(&file).expect("still there"),
            "keep me"
        );
    }
}
