-- TPC-H Q15, validation parameters (DATE = 1996-01-01).
-- Dialect: the spec's `create view revenue0 ...; select ...; drop view revenue0` is written with
-- the view as a common table expression (the spec's variant of Q15 does the same): one statement,
-- and floe sql has no views.
with revenue0 (supplier_no, total_revenue) as (
    select
        l_suppkey,
        sum(l_extendedprice * (1 - l_discount))
    from
        lineitem
    where
        l_shipdate >= date '1996-01-01'
        and l_shipdate < date '1996-01-01' + interval '3' month
    group by
        l_suppkey
)
select
    s_suppkey,
    s_name,
    s_address,
    s_phone,
    total_revenue
from
    supplier,
    revenue0
where
    s_suppkey = supplier_no
    and total_revenue = (
        select
            max(total_revenue)
        from
            revenue0
    )
order by
    s_suppkey;
