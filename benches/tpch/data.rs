//! TPC-H's eight tables as Arrow record batches, from `tpchgen`'s rows.
//!
//! `tpchgen-arrow` would do this, but every release of it is built on another Arrow than the
//! workspace's (58), so the batches are built here: one column builder per column, in the
//! spec's column order and with its types — identifiers `BIGINT`, `INTEGER` columns `int`,
//! money and quantities `DECIMAL(15,2)`, dates `DATE`, the rest strings. Every column is
//! `NOT NULL`, as in the spec.

use std::fmt::{Display, Write};
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tpchgen::dates::TPCHDate;
use tpchgen::decimal::TPCHDecimal;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

/// The tables, smallest first (the order they are loaded in).
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// Rows per record batch.
const BATCH_ROWS: usize = 65_536;

/// A column's SQL type.
#[derive(Clone, Copy)]
enum Kind {
    Long,
    Int,
    Money,
    Date,
    Text,
}

/// `table` at `scale`: its schema and its rows in batches.
pub fn generate(table: &str, scale: f64) -> (SchemaRef, Vec<RecordBatch>) {
    use Kind::*;
    match table {
        "region" => fill(
            &[("r_regionkey", Long), ("r_name", Text), ("r_comment", Text)],
            RegionGenerator::new(scale, 1, 1).iter(),
            |r, w| {
                w.long(r.r_regionkey);
                w.text(r.r_name);
                w.text(r.r_comment);
            },
        ),
        "nation" => fill(
            &[
                ("n_nationkey", Long),
                ("n_name", Text),
                ("n_regionkey", Long),
                ("n_comment", Text),
            ],
            NationGenerator::new(scale, 1, 1).iter(),
            |n, w| {
                w.long(n.n_nationkey);
                w.text(n.n_name);
                w.long(n.n_regionkey);
                w.text(n.n_comment);
            },
        ),
        "supplier" => fill(
            &[
                ("s_suppkey", Long),
                ("s_name", Text),
                ("s_address", Text),
                ("s_nationkey", Long),
                ("s_phone", Text),
                ("s_acctbal", Money),
                ("s_comment", Text),
            ],
            SupplierGenerator::new(scale, 1, 1).iter(),
            |s, w| {
                w.long(s.s_suppkey);
                w.text(s.s_name);
                w.text(&s.s_address);
                w.long(s.s_nationkey);
                w.text(&s.s_phone);
                w.money(s.s_acctbal);
                w.text(&s.s_comment);
            },
        ),
        "customer" => fill(
            &[
                ("c_custkey", Long),
                ("c_name", Text),
                ("c_address", Text),
                ("c_nationkey", Long),
                ("c_phone", Text),
                ("c_acctbal", Money),
                ("c_mktsegment", Text),
                ("c_comment", Text),
            ],
            CustomerGenerator::new(scale, 1, 1).iter(),
            |c, w| {
                w.long(c.c_custkey);
                w.text(c.c_name);
                w.text(&c.c_address);
                w.long(c.c_nationkey);
                w.text(&c.c_phone);
                w.money(c.c_acctbal);
                w.text(c.c_mktsegment);
                w.text(c.c_comment);
            },
        ),
        "part" => fill(
            &[
                ("p_partkey", Long),
                ("p_name", Text),
                ("p_mfgr", Text),
                ("p_brand", Text),
                ("p_type", Text),
                ("p_size", Int),
                ("p_container", Text),
                ("p_retailprice", Money),
                ("p_comment", Text),
            ],
            PartGenerator::new(scale, 1, 1).iter(),
            |p, w| {
                w.long(p.p_partkey);
                w.text(&p.p_name);
                w.text(p.p_mfgr);
                w.text(p.p_brand);
                w.text(p.p_type);
                w.int(p.p_size);
                w.text(p.p_container);
                w.money(p.p_retailprice);
                w.text(p.p_comment);
            },
        ),
        "partsupp" => fill(
            &[
                ("ps_partkey", Long),
                ("ps_suppkey", Long),
                ("ps_availqty", Int),
                ("ps_supplycost", Money),
                ("ps_comment", Text),
            ],
            PartSuppGenerator::new(scale, 1, 1).iter(),
            |ps, w| {
                w.long(ps.ps_partkey);
                w.long(ps.ps_suppkey);
                w.int(ps.ps_availqty);
                w.money(ps.ps_supplycost);
                w.text(ps.ps_comment);
            },
        ),
        "orders" => fill(
            &[
                ("o_orderkey", Long),
                ("o_custkey", Long),
                ("o_orderstatus", Text),
                ("o_totalprice", Money),
                ("o_orderdate", Date),
                ("o_orderpriority", Text),
                ("o_clerk", Text),
                ("o_shippriority", Int),
                ("o_comment", Text),
            ],
            OrderGenerator::new(scale, 1, 1).iter(),
            |o, w| {
                w.long(o.o_orderkey);
                w.long(o.o_custkey);
                w.text(o.o_orderstatus.as_str());
                w.money(o.o_totalprice);
                w.date(o.o_orderdate);
                w.text(o.o_orderpriority);
                w.text(o.o_clerk);
                w.int(o.o_shippriority);
                w.text(o.o_comment);
            },
        ),
        "lineitem" => fill(
            &[
                ("l_orderkey", Long),
                ("l_partkey", Long),
                ("l_suppkey", Long),
                ("l_linenumber", Int),
                ("l_quantity", Money),
                ("l_extendedprice", Money),
                ("l_discount", Money),
                ("l_tax", Money),
                ("l_returnflag", Text),
                ("l_linestatus", Text),
                ("l_shipdate", Date),
                ("l_commitdate", Date),
                ("l_receiptdate", Date),
                ("l_shipinstruct", Text),
                ("l_shipmode", Text),
                ("l_comment", Text),
            ],
            LineItemGenerator::new(scale, 1, 1).iter(),
            |l, w| {
                w.long(l.l_orderkey);
                w.long(l.l_partkey);
                w.long(l.l_suppkey);
                w.int(l.l_linenumber);
                // A whole number of items, DECIMAL(15,2) in the spec.
                w.money(TPCHDecimal(l.l_quantity * 100));
                w.money(l.l_extendedprice);
                w.money(l.l_discount);
                w.money(l.l_tax);
                w.text(l.l_returnflag);
                w.text(l.l_linestatus);
                w.date(l.l_shipdate);
                w.date(l.l_commitdate);
                w.date(l.l_receiptdate);
                w.text(l.l_shipinstruct);
                w.text(l.l_shipmode);
                w.text(l.l_comment);
            },
        ),
        other => panic!("no TPC-H table {other}"),
    }
}

/// Runs `rows` through `write` into batches of the schema `columns` describes.
fn fill<R>(
    columns: &[(&str, Kind)],
    rows: impl Iterator<Item = R>,
    write: impl Fn(&R, &mut RowWriter),
) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| Field::new(*name, data_type(*kind), false))
            .collect::<Vec<_>>(),
    ));
    let mut builders: Vec<Builder> = columns
        .iter()
        .map(|(_, kind)| Builder::new(*kind))
        .collect();
    let mut batches = Vec::new();
    let mut pending = 0;
    for row in rows {
        write(
            &row,
            &mut RowWriter {
                columns: builders.iter_mut(),
            },
        );
        pending += 1;
        if pending == BATCH_ROWS {
            batches.push(finish(&schema, &mut builders));
            pending = 0;
        }
    }
    if pending > 0 {
        batches.push(finish(&schema, &mut builders));
    }
    (schema, batches)
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Long => DataType::Int64,
        Kind::Int => DataType::Int32,
        Kind::Money => DataType::Decimal128(15, 2),
        Kind::Date => DataType::Date32,
        Kind::Text => DataType::Utf8,
    }
}

fn finish(schema: &SchemaRef, builders: &mut [Builder]) -> RecordBatch {
    let columns: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
    RecordBatch::try_new(schema.clone(), columns).expect("batch matches its schema")
}

enum Builder {
    Long(Int64Builder),
    Int(Int32Builder),
    Money(Decimal128Builder),
    Date(Date32Builder),
    Text(StringBuilder),
}

impl Builder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Long => Self::Long(Int64Builder::with_capacity(BATCH_ROWS)),
            Kind::Int => Self::Int(Int32Builder::with_capacity(BATCH_ROWS)),
            Kind::Money => Self::Money(
                Decimal128Builder::with_capacity(BATCH_ROWS)
                    .with_precision_and_scale(15, 2)
                    .expect("DECIMAL(15,2)"),
            ),
            Kind::Date => Self::Date(Date32Builder::with_capacity(BATCH_ROWS)),
            Kind::Text => Self::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 24)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Long(b) => ArrayBuilder::finish(b),
            Self::Int(b) => ArrayBuilder::finish(b),
            Self::Money(b) => ArrayBuilder::finish(b),
            Self::Date(b) => ArrayBuilder::finish(b),
            Self::Text(b) => ArrayBuilder::finish(b),
        }
    }
}

/// Appends one row, a value per column in schema order; a value of the wrong type for its
/// column is a bug in the table's description above, and panics.
struct RowWriter<'a> {
    columns: std::slice::IterMut<'a, Builder>,
}

impl RowWriter<'_> {
    fn next(&mut self) -> &mut Builder {
        self.columns.next().expect("more values than columns")
    }

    fn long(&mut self, value: i64) {
        match self.next() {
            Builder::Long(b) => b.append_value(value),
            _ => panic!("BIGINT value for another column type"),
        }
    }

    fn int(&mut self, value: i32) {
        match self.next() {
            Builder::Int(b) => b.append_value(value),
            _ => panic!("INTEGER value for another column type"),
        }
    }

    fn money(&mut self, value: TPCHDecimal) {
        match self.next() {
            Builder::Money(b) => b.append_value(i128::from(value.into_inner())),
            _ => panic!("DECIMAL value for another column type"),
        }
    }

    fn date(&mut self, value: TPCHDate) {
        match self.next() {
            Builder::Date(b) => b.append_value(value.to_unix_epoch()),
            _ => panic!("DATE value for another column type"),
        }
    }

    /// Written straight into the column's buffer: most of the generator's strings are
    /// `Display` values, not `&str`.
    fn text(&mut self, value: impl Display) {
        match self.next() {
            Builder::Text(b) => {
                write!(b, "{value}").expect("write to a string builder");
                b.append_value("");
            }
            _ => panic!("string value for another column type"),
        }
    }
}
