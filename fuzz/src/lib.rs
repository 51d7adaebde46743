//! What the fuzz targets share.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Feeds `data` to `codec` in chunks whose lengths come from `cuts` (1–256 bytes each; the rest
/// at once when they run out), decoding after each chunk and handing every item to `each`, as
/// a socket's reads would. Returns what is left undecoded (for `decode_eof`), or the decoder's
/// error, which ends a connection.
pub fn decode_in_chunks<D: Decoder>(
    codec: &mut D,
    data: &[u8],
    cuts: &[u8],
    mut each: impl FnMut(D::Item),
) -> Result<BytesMut, D::Error> {
    let mut buf = BytesMut::new();
    let mut rest = data;
    let mut cuts = cuts.iter().map(|c| 1 + *c as usize);
    while !rest.is_empty() {
        let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = codec.decode(&mut buf)? {
            each(item);
        }
    }
    Ok(buf)
}
