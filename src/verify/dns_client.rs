//! A minimal DNS client over UDP: one question (A or PTR) to one server,
//! enough for `lab verify` to ask dns0 from the host what it answers.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;

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
    let mut msg = Vec::with_capacity(32 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0, 0]); // flags: a standard query
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(msg)
}

fn u16_at(msg: &[u8], pos: usize) -> Result<u16, String> {
    msg.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated DNS message".to_string())
}

/// Reads a (possibly compressed) name at `pos`; returns it with a final dot
/// and the position just after it in the message.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut name = String::new();
    let mut end = None;
    // Each pointer must go backwards, so a loop cannot be followed forever.
    let mut limit = pos;
    loop {
        let len = *msg.get(pos).ok_or("truncated DNS name")? as usize;
        if len & 0xC0 == 0xC0 {
            let target = (u16_at(msg, pos)? & 0x3FFF) as usize;
            if target >= limit {
                return Err("DNS name compression loop".into());
            }
            end.get_or_insert(pos + 2);
            limit = target;
            pos = target;
            continue;
        }
        if len == 0 {
            let after = end.unwrap_or(pos + 1);
            if name.is_empty() {
                name.push('.');
            }
            return Ok((name, after));
        }
        let label = msg
            .get(pos + 1..pos + 1 + len)
            .ok_or("truncated DNS label")?;
        name.push_str(&String::from_utf8_lossy(label));
        name.push('.');
        pos += 1 + len;
    }
}

/// The answers of a response to query `id`; an error names the rcode.
pub fn parse_response(id: u16, msg: &[u8]) -> Result<Vec<Record>, String> {
    if u16_at(msg, 0)? != id {
        return Err("the response does not match the query's id".into());
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err("not a DNS response".into());
    }
    match flags & 0x000F {
        0 => {}
        3 => return Err("NXDOMAIN (no such name)".into()),
        2 => return Err("SERVFAIL".into()),
        5 => return Err("REFUSED".into()),
        code => return Err(format!("rcode {code}")),
    }
    let questions = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = read_name(msg, pos)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        let (_, after) = read_name(msg, pos)?;
        let rtype = u16_at(msg, after)?;
        let rdlen = u16_at(msg, after + 8)? as usize;
        let rdata_at = after + 10;
        let rdata = msg
            .get(rdata_at..rdata_at + rdlen)
            .ok_or("truncated DNS record")?;
        out.push(match rtype {
            TYPE_A if rdlen == 4 => {
                Record::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))
            }
            TYPE_PTR => Record::Ptr(read_name(msg, rdata_at)?.0),
            other => Record::Other(other),
        });
        pos = rdata_at + rdlen;
    }
    Ok(out)
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
                    if u16_at(&buf[..n], 0).ok() == Some(id) {
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
