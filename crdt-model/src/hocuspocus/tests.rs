use super::*;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

const LIMIT: usize = 1 << 20;

fn writer() -> Decoding {
    Decoding::writer(LIMIT)
}

fn sample_update() -> Vec<u8> {
    let doc = Doc::new();
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, "hello");
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    update
}

/// Reads and decodes a client frame in one go.
fn decode(frame: &[u8], decoding: &Decoding) -> Result<(Address, ClientMessage), String> {
    match read_frame(frame, LIMIT).map_err(|e| e.to_string())? {
        Frame::Addressed {
            address,
            message_type,
            body,
        } => decode_message(message_type, body, decoding)
            .map(|m| (address, m))
            .map_err(|e| e.to_string()),
        other => Err(format!("not addressed: {other:?}")),
    }
}

// Frames built byte by byte as the stock provider's encoders (lib0 varString/varUint) write
// them decode to what the provider meant; this pins the codec to the wire, not to itself.
#[test]
fn decodes_provider_frames() {
    // "notes/1" Auth Token "tk" version "4.8.0"
    let mut token = vec![7];
    token.extend_from_slice(b"notes/1");
    token.extend_from_slice(&[2, 0, 2]);
    token.extend_from_slice(b"tk");
    token.push(5);
    token.extend_from_slice(b"4.8.0");
    let (address, message) = decode(&token, &writer()).expect("token");
    assert_eq!(address, Address::plain("notes/1"));
    assert!(matches!(
        message,
        ClientMessage::Token { ref token, ref provider_version }
            if token == "tk" && provider_version.as_deref() == Some("4.8.0")
    ));
    // A provider before 4.0: no version.
    let (_, message) = decode(&encode_token("d", "", None), &writer()).expect("old token");
    assert!(matches!(
        message,
        ClientMessage::Token {
            provider_version: None,
            ..
        }
    ));
    // SyncStep1 with an empty state vector, under a session address "d\0abc".
    let frame = [5, b'd', 0, b'a', b'b', b'c', 0, 0, 1, 0];
    let (address, message) = decode(&frame, &writer()).expect("step1");
    assert_eq!(address.doc(), "d");
    assert_eq!(address.session(), Some("abc"));
    assert_eq!(address.as_str(), "d\0abc");
    assert!(!address.is_plain());
    assert!(matches!(message, ClientMessage::Sync(Inbound::SyncStep1(sv)) if sv.is_empty()));
    // An update, the way y-protocols' writeUpdate appends it.
    let update = sample_update();
    let frame = encode_addressed("d", &protocol::encode_update(&update));
    let (_, message) = decode(&frame, &writer()).expect("update");
    assert!(matches!(message, ClientMessage::Sync(Inbound::Update(u)) if u.bytes == update));
    // The same update from a read-only peer is only measured.
    let reader = Decoding {
        may_write: false,
        ..writer()
    };
    let (_, message) = decode(&frame, &reader).expect("read-only update");
    assert!(matches!(
        message,
        ClientMessage::Sync(Inbound::ReadOnlyUpdate(_))
    ));
    // Stateless, CLOSE, QueryAwareness.
    let frame = [1, b'd', 5, 3, b'h', b'e', b'y'];
    assert!(
        matches!(decode(&frame, &writer()), Ok((_, ClientMessage::Stateless(p))) if p == "hey")
    );
    assert!(matches!(
        decode(&encode_client_close("d"), &writer()),
        Ok((_, ClientMessage::Close))
    ));
    assert!(matches!(
        decode(&[1, b'd', 3], &writer()),
        Ok((_, ClientMessage::QueryAwareness))
    ));
    // Awareness for client 5.
    let mut payload = Vec::new();
    payload.write_var(1u32);
    payload.write_var(5u64);
    payload.write_var(1u32);
    payload.write_string("{\"a\":1}");
    let mut frame = vec![1, b'd', 1];
    frame.write_buf(&payload);
    let (_, message) = decode(&frame, &writer()).expect("awareness");
    assert!(matches!(message, ClientMessage::Awareness(a) if a.clients.len() == 1));
}

// Ping and Pong are a bare byte; an address that starts with byte 9 or 10 is still an
// address, because it needs that many more bytes.
#[test]
fn ping_and_pong_are_bare() {
    assert_eq!(read_frame(&PING, LIMIT), Ok(Frame::Ping));
    assert_eq!(read_frame(&PONG, LIMIT), Ok(Frame::Pong));
    let mut frame = vec![9];
    frame.extend_from_slice(b"notes/abc");
    frame.push(MSG_QUERY_AWARENESS);
    let Ok(Frame::Addressed {
        address,
        message_type,
        body,
    }) = read_frame(&frame, LIMIT)
    else {
        panic!("not addressed")
    };
    assert_eq!(address.doc(), "notes/abc");
    assert_eq!(message_type, 3);
    assert!(body.is_empty());
}

// What the server writes is what the stock provider reads: the address first, then the
// type, then the body; byte for byte what lib0 writes.
#[test]
fn server_frames_are_the_provider_layout() {
    let check = |frame: Vec<u8>, expected: &[u8]| assert_eq!(frame, expected);
    check(
        encode_authenticated("d", Scope::ReadWrite),
        &[&[1, b'd', 2, 2, 10][..], b"read-write"].concat(),
    );
    check(
        encode_authenticated("d", Scope::ReadOnly),
        &[&[1, b'd', 2, 2, 8][..], b"readonly"].concat(),
    );
    check(
        encode_permission_denied("d\0s", "no"),
        &[3, b'd', 0, b's', 2, 1, 2, b'n', b'o'],
    );
    check(encode_token_request("d"), &[1, b'd', 2, 0]);
    check(encode_sync_status("d", true), &[1, b'd', 8, 1]);
    check(encode_sync_status("d", false), &[1, b'd', 8, 0]);
    check(encode_stateless("d", "x"), &[1, b'd', 5, 1, b'x']);
    check(encode_close("d", "bye"), &[1, b'd', 7, 3, b'b', b'y', b'e']);
    check(encode_query_awareness("d"), &[1, b'd', 3]);
    let sv = StateVector::default();
    check(
        encode_addressed("d", &protocol::encode_sync_step1(&sv)),
        &[&[1, b'd'][..], &protocol::encode_sync_step1(&sv)].concat(),
    );
    assert_eq!(sv.encode_v1(), vec![0]);
}

// Hostile frames are refused with a typed error, never a panic, and never allocate what a
// length prefix claims. Those that name no readable address are refused as frames; those
// that do, as messages of that address.
#[test]
fn refuses_hostile_frames() {
    let frame_errors: Vec<(Vec<u8>, FrameError)> = vec![
        (vec![], FrameError::Empty),
        (vec![0xff; 12], FrameError::Address),
        (vec![0xff, 0xff, 0xff, 0xff, 0x0f], FrameError::Address),
        (vec![5, b'a', b'b'], FrameError::Address),
        (vec![2, 0xc3, 0x28, 0], FrameError::Address), // not UTF-8
        (vec![1, b'd'], FrameError::MessageType("d".into())),
        (vec![1, b'd', 0x80], FrameError::MessageType("d".into())),
        (vec![2, b'd', 0, 0], FrameError::Session("d\0".into())), // empty session
        (
            vec![3, b'd', 0, 1, 0],
            FrameError::Session("d\0\x01".into()),
        ), // control byte
        (
            [&[67, b'd', 0][..], &[b'x'; 65], &[0]].concat(),
            FrameError::Session(format!("d\0{}", "x".repeat(65))),
        ),
    ];
    // The longest session passes.
    let edge = [&[66, b'd', 0][..], &[b'x'; 64], &[0]].concat();
    assert!(matches!(
        read_frame(&edge, LIMIT),
        Ok(Frame::Addressed { .. })
    ));
    for (frame, expected) in frame_errors {
        assert_eq!(read_frame(&frame, LIMIT).err(), Some(expected), "{frame:?}");
    }
    assert_eq!(
        read_frame(&[0; 101], 100).err(),
        Some(FrameError::TooLarge {
            size: 101,
            limit: 100
        })
    );
    let update = sample_update();
    let mut truncated = encode_addressed("d", &protocol::encode_update(&update));
    truncated.truncate(truncated.len() - 3);
    let long_token = encode_token("d", &"t".repeat(TOKEN_LEN_MAX_BYTES + 1), None);
    let long_version = encode_token("d", "t", Some(&"v".repeat(VERSION_LEN_MAX_BYTES + 1)));
    let message_errors: Vec<(Vec<u8>, &str)> = vec![
        (vec![1, b'd', 11], "unknown message type 11"),
        (vec![1, b'd', 0xff, 0x01], "unknown message type 255"),
        (vec![1, b'd', 6, 1, b'x'], "sent by servers"),
        (vec![1, b'd', 8, 1], "sent by servers"),
        (vec![1, b'd', 2, 2, 1, b'x'], "sent by servers"), // Authenticated from a client
        (vec![1, b'd', 2], "malformed auth message"),
        (vec![1, b'd', 2, 0, 9, b'x'], "malformed token"),
        (vec![1, b'd', 0, 9, 0], "malformed sync step"),
        (vec![1, b'd', 0, 2, 5], "malformed sync payload"),
        (
            vec![1, b'd', 0, 0, 3, 0xff, 0xff, 0x7f],
            "malformed state vector",
        ),
        (
            vec![1, b'd', 1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f],
            "malformed awareness",
        ),
        (
            vec![1, b'd', 5, 0xff, 0xff, 0xff, 0xff, 0x0f],
            "malformed stateless",
        ),
        (vec![1, b'd', 3, 0], "1 bytes after the message"),
        (vec![1, b'd', 7, 0], "1 bytes after the message"),
        (vec![1, b'd', 0, 0, 1, 0, 0], "1 bytes after the message"),
        (truncated, "malformed"),
        (long_token, "token is longer than"),
        (long_version, "provider version is longer than"),
    ];
    for (frame, expected) in message_errors {
        let got = decode(&frame, &writer());
        assert!(
            matches!(&got, Err(e) if e.contains(expected)),
            "{frame:?}: {got:?}"
        );
    }
}
