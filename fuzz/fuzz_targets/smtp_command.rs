//! The SMTP command path: our Postmaster rewrite and smtp-proto's parser on any line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let qualified = sipmta::smtp::rcpt::qualify_postmaster(line, "localhost");
    let line = qualified.as_deref().unwrap_or(line);
    let mut line = line.to_vec();
    line.extend_from_slice(b"\r\n");
    if let Ok(request) = smtp_proto::Request::parse(&mut line.iter()) {
        let _ = request.into_owned();
    }
    let _ = sipmta::smtp::session::parse_error_reply(smtp_proto::Error::UnknownCommand).to_wire();
});
