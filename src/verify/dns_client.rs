//! One DNS question (A or PTR) over UDP to one server, enough for `lab
//! verify` to ask dns0 from the host what it answers. The messages are
//! written and read by hickory-proto; this file only sends them (a fresh
//! random id, up to 3 tries, each waiting `wait`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;

/// One answer record that matters to kubelab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    /// The target name, with its final dot.
    Ptr(String),
    Other(u16),
}

/// `192.168.56.10` -> `10.56.168.192.in-addr.arpa`
pub fn reverse_name(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// A query message for `name`, recursion not asked (dns0 is authoritative).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("{name:?} is not a valid DNS name: {e}");
    let name = Name::from_ascii(name).map_err(|e| invalid(&e))?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(name, RecordType::from(qtype)));
    msg.to_vec().map_err(|e| invalid(&e))
}

/// The answers of a response to query `id`; an error names the rcode.
pub fn parse_response(id: u16, msg: &[u8]) -> Result<Vec<Record>, String> {
    let msg = Message::from_vec(msg).map_err(|e| format!("not a DNS message: {e}"))?;
    if msg.metadata.id != id {
        return Err("the response does not match the query's id".into());
    }
    if msg.metadata.message_type != MessageType::Response {
        return Err("not a DNS response".into());
    }
    match msg.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err("NXDOMAIN (no such name)".into()),
        ResponseCode::ServFail => return Err("SERVFAIL".into()),
        ResponseCode::Refused => return Err("REFUSED".into()),
        code => return Err(format!("rcode {}", u16::from(code))),
    }
    Ok(msg
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => Record::A(a.0),
            RData::PTR(ptr) => Record::Ptr(ptr.0.to_string()),
            _ => Record::Other(u16::from(r.record_type())),
        })
        .collect())
}

/// Asks `server` one question, retrying twice when no answer comes.
pub async fn query(
    server: SocketAddr,
    name: impl AsRef<str>,
    qtype: u16,
    wait: Duration,
) -> Result<Vec<Record>, String> {
    let name = name.as_ref();
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| format!("no randomness for a query id: {e}"))?;
    let id = u16::from_be_bytes(id);
    let query = encode_query(id, name, qtype)?;
    let socket = tokio::net::UdpSocket::bind(("0.0.0.0", 0))
        .await
        .map_err(|e| format!("could not open a UDP socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("could not reach {server}: {e}"))?;
    let mut buf = vec![0u8; 1500];
    for _ in 0..3 {
        socket
            .send(&query)
            .await
            .map_err(|e| format!("could not send to {server}: {e}"))?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(format!("{server}: {e}")),
                Ok(Ok(n)) => {
                    // A stray datagram with another id is not our answer.
                    if buf[..n].get(..2) == Some(&id.to_be_bytes()[..]) {
                        return parse_response(id, &buf[..n]);
                    }
                }
            }
        }
    }
    Err(format!("no answer from {server} after 3 tries"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as bind9 sends it: the question, then answers whose
    /// owner is a pointer to the question's name.
    fn response(
        id: u16,
        query_name: &str,
        qtype: u16,
        rcode: u8,
        rdata: &[(u16, Vec<u8>)],
    ) -> Vec<u8> {
        let mut msg = encode_query(id, query_name, qtype).unwrap();
        msg[2] = 0x84; // response, authoritative
        msg[3] = rcode;
        msg[7] = rdata.len() as u8;
        for (rtype, data) in rdata {
            msg.extend_from_slice(&[0xC0, 12]);
            msg.extend_from_slice(&rtype.to_be_bytes());
            msg.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
            msg.extend_from_slice(&(data.len() as u16).to_be_bytes());
            msg.extend_from_slice(data);
        }
        msg
    }

    #[test]
    fn reads_a_and_compressed_ptr_answers() {
        let a = response(
            7,
            "etcd0.lan",
            TYPE_A,
            0,
            &[(TYPE_A, vec![192, 168, 56, 10])],
        );
        assert_eq!(
            parse_response(7, &a).unwrap(),
            [Record::A(Ipv4Addr::new(192, 168, 56, 10))]
        );
        // PTR target "etcd0." then a pointer to "lan." inside the question? The
        // question is 10.56.168.192.in-addr.arpa; use a plain name instead.
        let mut target = vec![5];
        target.extend_from_slice(b"etcd0");
        target.push(3);
        target.extend_from_slice(b"lan");
        target.push(0);
        let ptr = response(
            9,
            &reverse_name(Ipv4Addr::new(192, 168, 56, 10)),
            TYPE_PTR,
            0,
            &[(TYPE_PTR, target)],
        );
        assert_eq!(
            parse_response(9, &ptr).unwrap(),
            [Record::Ptr("etcd0.lan.".into())]
        );
    }

    #[test]
    fn names_the_error_and_refuses_a_foreign_id() {
        let nx = response(1, "nope.lan", TYPE_A, 3, &[]);
        assert_eq!(
            parse_response(1, &nx).unwrap_err(),
            "NXDOMAIN (no such name)"
        );
        assert!(parse_response(2, &nx).is_err());
        assert!(parse_response(1, &nx[..5]).is_err());
    }

    #[test]
    fn a_compression_loop_is_an_error_not_a_hang() {
        let mut msg = response(1, "a.lan", TYPE_A, 0, &[(TYPE_A, vec![1, 2, 3, 4])]);
        // Point the answer's owner name at itself.
        let at = msg.len() - 16;
        msg[at] = 0xC0;
        msg[at + 1] = at as u8;
        assert!(parse_response(1, &msg).is_err());
    }

    #[tokio::test]
    async fn asks_a_server_on_loopback_over_udp() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let answer = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert_eq!(&buf[12..n - 4], b"\x03api\x03lan\x00");
            let reply = response(
                id,
                "api.lan",
                TYPE_A,
                0,
                &[(TYPE_A, vec![192, 168, 56, 50])],
            );
            server.send_to(&reply, from).await.unwrap();
        });
        let records = query(addr, "api.lan", TYPE_A, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(records, [Record::A(Ipv4Addr::new(192, 168, 56, 50))]);
        answer.await.unwrap();
    }
}
