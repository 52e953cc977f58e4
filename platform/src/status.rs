//! gRPC status messages bounded in length, so no error text from deep inside grows a response.

/// The longest message a status carries, in characters.
pub const MAX_STATUS_MESSAGE: usize = 512;

/// `m`, cut to [`MAX_STATUS_MESSAGE`] characters.
pub fn bounded_message(m: String) -> String {
    match m.char_indices().nth(MAX_STATUS_MESSAGE) {
        None => m,
        Some((i, _)) => format!("{}…", &m[..i]),
    }
}
