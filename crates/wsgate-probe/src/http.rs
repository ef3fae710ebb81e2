//! A plain HTTP GET through the same transport (no upgrade): status and `Location`, for the
//! 200, 404 and 308 checks.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{Probe, ProbeError};

/// A plain HTTP reply: status and `Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub location: Option<String>,
}

impl Probe {
    /// A plain `GET` (no upgrade) to the endpoint's path, over TLS when `wss`.
    pub async fn http_get(&self) -> Result<HttpReply, ProbeError> {
        self.within("HTTP GET", self.http_get_inner()).await
    }

    async fn http_get_inner(&self) -> Result<HttpReply, ProbeError> {
        let url = self.endpoint().url();
        let mut stream = self.transport().await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.endpoint().path,
            self.endpoint().host
        );
        let io_err = |source| ProbeError::HttpIo {
            url: url.clone(),
            source,
        };
        stream.write_all(request.as_bytes()).await.map_err(io_err)?;
        let head = read_http_head(&mut stream).await.map_err(io_err)?;
        parse_reply(&head).map_err(|message| ProbeError::Http { url, message })
    }
}

async fn read_http_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 << 10 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

pub(crate) fn parse_reply(head: &[u8]) -> Result<HttpReply, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(format!("incomplete head ({} bytes)", head.len()));
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(HttpReply {
        status: resp.code.unwrap_or_default(),
        location: resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("location"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_reply_is_parsed_with_its_location() {
        let head =
            b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://test.example.com/\r\n\r\n";
        assert_eq!(
            parse_reply(head).unwrap(),
            HttpReply {
                status: 308,
                location: Some("https://test.example.com/".into())
            }
        );
    }

    #[test]
    fn a_truncated_reply_is_an_error() {
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
