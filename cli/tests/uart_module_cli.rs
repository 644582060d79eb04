//! `specwire simulate uart-module`: the link appears with `module on PATH`,
//! a gateway's frames get their replies, SIGTERM ends it with a summary of
//! the counters on stderr and the link removed.

mod support;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use specwire_protocol::uart::{encode_frame, frame_decoder, Reply};
use specwire_testsupport::{temp_dir, Pipe, Running, PATIENCE};
use support::specwire;

#[test]
fn the_module_answers_on_its_link_and_reports_on_sigterm() {
    let dir = temp_dir();
    let link = dir.path().join("module");
    let mut command = specwire();
    command
        .args(["simulate", "uart-module", "--pty-link"])
        .arg(&link)
        .args(["--nodes", "2", "--slow-node", "0x0002:0.2", "--seed", "7"])
        .args(["--data-interval", "1h", "--net-interval", "1h"]);
    let mut module = Running::start(&mut command);
    let ready = module.wait_for(Pipe::Stdout, |line| line.starts_with("module on "));
    assert_eq!(ready, format!("module on {}", link.display()));

    let mut port = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&link)
        .expect("open the link");
    let mut reader = port.try_clone().expect("clone the port");
    let (tx, bodies) = mpsc::channel();
    std::thread::spawn(move || {
        let mut decoder = frame_decoder();
        let mut buf = [0u8; 512];
        // Ends when the module exits (the pty's master closes).
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            decoder.decode(&buf[..n], |body| drop(tx.send(body.to_vec())));
        }
    });
    let mut reply = |body: &[u8]| {
        port.write_all(&encode_frame(body)).expect("send a frame");
        loop {
            let body = bodies
                .recv_timeout(PATIENCE)
                .expect("a frame from the module");
            match Reply::decode(&body).expect("a module body") {
                Reply::Message(_) => continue,
                reply => return reply,
            }
        }
    };
    assert_eq!(reply(b"SENDI\x00\x02slow"), Reply::Success(Vec::new()));
    assert!(
        matches!(reply(b"SEND-\x00\x09"), Reply::Failure { message } if message == "unknown node 0x0009")
    );

    module.signal("TERM");
    let (status, _, stderr) = module.finish_within(PATIENCE + Duration::from_secs(1));
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("2 commands answered (1 S, 1 F)") && stderr.contains("NOD 2"),
        "{stderr}"
    );
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is gone"
    );
}
