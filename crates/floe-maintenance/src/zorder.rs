//! Z-order: rows laid out along a Morton curve over several columns, so that files (and row
//! groups) cover small boxes of all of them at once and filters on any of the columns prune well.
//!
//! Each column's value is first mapped to 64 bits whose unsigned order is the value's order
//! (integers, dates and timestamps with the sign bit flipped; floats by their IEEE bits, negative
//! ones inverted; strings and binary by their first 8 bytes; booleans as 0/1); a null takes the
//! lowest word.
//! The key of a row interleaves those words bit by bit, most significant first, and rows are
//! sorted by it. As in Iceberg's Spark z-order, strings that share their first 8 bytes fall in
//! one cell.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};

use crate::{MaintenanceError, Result};

/// Indices of the z-order columns in the reader's batches, and their names for messages.
#[derive(Debug, Clone)]
pub(crate) struct ZOrderPlan {
    pub columns: Vec<usize>,
}

/// All rows of `batches` in one batch, in z-order over the plan's columns.
pub(crate) fn zordered(batches: Vec<RecordBatch>, plan: &ZOrderPlan) -> Result<Vec<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(batches);
    };
    let arrow = |err: arrow::error::ArrowError| MaintenanceError::Iceberg(err.to_string());
    let all = concat_batches(&first.schema(), &batches).map_err(arrow)?;
    let words: Vec<Vec<u64>> = plan
        .columns
        .iter()
        .map(|column| ordered_words(all.column(*column)))
        .collect::<Result<_>>()?;
    let keys: Vec<Vec<u8>> = (0..all.num_rows())
        .map(|row| interleave(&words.iter().map(|w| w[row]).collect::<Vec<_>>()))
        .collect();
    let mut order: Vec<u32> = (0..u32::try_from(all.num_rows()).unwrap_or(u32::MAX)).collect();
    order.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
    let indices = UInt32Array::from(order);
    Ok(vec![take_record_batch(&all, &indices).map_err(arrow)?])
}

/// The bits of `words`, interleaved from the most significant down: bit 63 of each word in
/// turn, then bit 62, ...
pub(crate) fn interleave(words: &[u64]) -> Vec<u8> {
    let mut key = vec![0u8; words.len() * 8];
    let mut out = 0usize;
    for bit in (0..64).rev() {
        for word in words {
            if (word >> bit) & 1 == 1 {
                key[out / 8] |= 0x80 >> (out % 8);
            }
            out += 1;
        }
    }
    key
}

const SIGN: u64 = 1 << 63;

/// One order-preserving 64-bit word per row (nulls: 0, before every value).
fn ordered_words(array: &ArrayRef) -> Result<Vec<u64>> {
    let signed = |value: i64| (value as u64) ^ SIGN;
    let float = |value: f64| {
        let bits = value.to_bits();
        if bits & SIGN == 0 { bits ^ SIGN } else { !bits }
    };
    let prefix = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        u64::from_be_bytes(word)
    };
    let words: Vec<Option<u64>> = match array.data_type() {
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map(u64::from))
            .collect(),
        DataType::Int8 => primitive::<Int8Type>(array, |v| signed(i64::from(v))),
        DataType::Int16 => primitive::<Int16Type>(array, |v| signed(i64::from(v))),
        DataType::Int32 => primitive::<Int32Type>(array, |v| signed(i64::from(v))),
        DataType::Int64 => primitive::<Int64Type>(array, signed),
        DataType::Date32 => primitive::<Date32Type>(array, |v| signed(i64::from(v))),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            primitive::<TimestampMicrosecondType>(array, signed)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            primitive::<TimestampMillisecondType>(array, signed)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            primitive::<TimestampNanosecondType>(array, signed)
        }
        DataType::Float32 => primitive::<Float32Type>(array, |v| float(f64::from(v))),
        DataType::Float64 => primitive::<Float64Type>(array, float),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| prefix(s.as_bytes())))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(|s| prefix(s.as_bytes())))
            .collect(),
        DataType::Binary => array
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(prefix))
            .collect(),
        DataType::LargeBinary => array
            .as_binary::<i64>()
            .iter()
            .map(|v| v.map(prefix))
            .collect(),
        other => {
            return Err(MaintenanceError::InvalidRequest(format!(
                "z-order over a column of type {other} is not supported (integers, dates, \
                 timestamps, floats, booleans, strings and binary are)"
            )));
        }
    };
    // A null is the lowest word: it sorts with (not after) the type's least value.
    Ok(words.into_iter().map(|word| word.unwrap_or(0)).collect())
}

fn primitive<T: arrow::datatypes::ArrowPrimitiveType>(
    array: &ArrayRef,
    word: impl Fn(T::Native) -> u64,
) -> Vec<Option<u64>> {
    array
        .as_primitive::<T>()
        .iter()
        .map(|v| v.map(&word))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn interleaving_takes_bits_in_turn() {
        assert_eq!(interleave(&[u64::MAX, 0]), vec![0b1010_1010; 16]);
        assert_eq!(interleave(&[1 << 63]), vec![0x80, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn words_keep_each_types_order() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(-5),
            None,
            Some(3),
            Some(i64::MIN),
        ]));
        let w = ordered_words(&ints).unwrap();
        assert!(w[1] <= w[3] && w[3] < w[0] && w[0] < w[2], "{w:?}");
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            -2.5,
            -0.0,
            0.0,
            1.5,
            f64::INFINITY,
        ]));
        let w = ordered_words(&floats).unwrap();
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "{w:?}");
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", "ab", "b", ""]));
        let w = ordered_words(&strings).unwrap();
        assert!(w[3] < w[0] && w[0] < w[1] && w[1] < w[2], "{w:?}");
    }

    #[test]
    fn rows_follow_the_morton_curve() {
        // A 4x4 grid in scrambled order comes out in Z order: (0,0) (1,0) (0,1) (1,1) (2,0) ...
        let mut cells = Vec::new();
        for x in 0..4i64 {
            for y in 0..4i64 {
                cells.push((x, y));
            }
        }
        cells.reverse();
        cells.swap(3, 9);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("x", DataType::Int64, false),
            arrow::datatypes::Field::new("y", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(
                    cells.iter().map(|c| c.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    cells.iter().map(|c| c.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let out = zordered(
            vec![batch],
            &ZOrderPlan {
                columns: vec![0, 1],
            },
        )
        .unwrap();
        let xs = out[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let ys = out[0]
            .column(1)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let got: Vec<(i64, i64)> = xs.into_iter().zip(ys).collect();
        assert_eq!(
            &got[..8],
            &[
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (0, 2),
                (0, 3),
                (1, 2),
                (1, 3)
            ]
        );
    }
}
