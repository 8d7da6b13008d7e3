-- Cheaper forms of four views over the 0009 tables, same columns and same answers
-- (checked against 0009's on the benchmark's data, and by tests/test_metrics.py).

-- WAU/MAU: an install's active days become covered intervals; only where a gap
-- is longer than the window does an interval end (+N days after its last active
-- day) and a new one start. 0009 emitted a +1/-1 pair for every active day, most
-- of them cancelling out, and sumMap paid for each.
CREATE OR REPLACE VIEW metric_wau AS
SELECT day, app, toUInt64(arrayCumSum(s.2)[arrayLastIndex(k -> k <= day, s.1)]) AS users
FROM
(
    SELECT app,
           sumMap(arrayConcat(starts, ends),
                  arrayConcat(arrayWithConstant(length(starts), 1),
                              arrayWithConstant(length(ends), -1))) AS s
    FROM
    (
        SELECT app,
               arraySort(arrayFilter(d -> d BETWEEN subtractDays({since:Date}, 6) AND {until:Date},
                                     groupUniqArrayArray(days))) AS ds,
               arrayFilter((a, prev) -> a > addDays(prev, 7), ds,
                           arrayPushFront(arrayPopBack(ds), toDate('1970-01-01'))) AS starts,
               arrayMap(a -> addDays(a, 7),
                        arrayFilter((a, next) -> next > addDays(a, 7), ds,
                                    arrayPushBack(arrayPopFront(ds), toDate('2149-06-06')))) AS ends
        FROM agg_active_days_v2
        WHERE last_day >= subtractDays({since:Date}, 6)
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
        HAVING length(ds) > 0
    )
    GROUP BY app
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app;

CREATE OR REPLACE VIEW metric_mau AS
SELECT day, app, toUInt64(arrayCumSum(s.2)[arrayLastIndex(k -> k <= day, s.1)]) AS users
FROM
(
    SELECT app,
           sumMap(arrayConcat(starts, ends),
                  arrayConcat(arrayWithConstant(length(starts), 1),
                              arrayWithConstant(length(ends), -1))) AS s
    FROM
    (
        SELECT app,
               arraySort(arrayFilter(d -> d BETWEEN subtractDays({since:Date}, 29) AND {until:Date},
                                     groupUniqArrayArray(days))) AS ds,
               arrayFilter((a, prev) -> a > addDays(prev, 30), ds,
                           arrayPushFront(arrayPopBack(ds), toDate('1970-01-01'))) AS starts,
               arrayMap(a -> addDays(a, 30),
                        arrayFilter((a, next) -> next > addDays(a, 30), ds,
                                    arrayPushBack(arrayPopFront(ds), toDate('2149-06-06')))) AS ends
        FROM agg_active_days_v2
        WHERE last_day >= subtractDays({since:Date}, 29)
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
        HAVING length(ds) > 0
    )
    GROUP BY app
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app;

-- Distinct features per install counted by their 64-bit hash (a set of strings
-- cost twice as much; 20-odd feature names do not collide), and "used in the
-- window" tested with arrayExists instead of summing the window's uses.
CREATE OR REPLACE VIEW metric_feature_breadth AS
SELECT a.app AS app, a.active_users AS active_users, b.feature_users AS feature_users,
       b.users_3plus AS users_3plus_features,
       round(b.users_3plus / a.active_users, 4) AS rate_3plus_features
FROM
(
    SELECT app, uniqExact(install_hash) AS active_users
    FROM agg_active_days_v2
    WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
      AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, days)
    GROUP BY app
) AS a
LEFT JOIN
(
    SELECT app, count() AS feature_users, countIf(n_features >= 3) AS users_3plus
    FROM
    (
        SELECT app, install_hash, uniqExact(cityHash64(feature)) AS n_features
        FROM agg_features_v2
        WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
          AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, mapKeys(uses))
        GROUP BY app, install_hash
    )
    GROUP BY app
) AS b ON a.app = b.app
ORDER BY app;

-- Retention: one row per install from the active-day rows (first and last day, the
-- months it was active in), then a constant array of periods; 0009 built a tuple
-- array per install with lambdas that copied its days once per period.
CREATE OR REPLACE VIEW metric_retention AS
SELECT cohort, period, cohort_users, retained_users,
       round(retained_users / cohort_users, 4) AS rate,
       round(1 - retained_users / cohort_users, 4) AS churn_rate
FROM
(
    SELECT toStartOfMonth(first_day) AS cohort,
           if(k < 30, concat('month_', toString(k)), concat('day_', toString(k))) AS period,
           if(k < 30, k, 100 + k) AS ord,
           count() AS cohort_users,
           countIf(if(k < 30, has(months, m0 + k), last_day >= addDays(first_day, k)))
               AS retained_users
    FROM
    (
        SELECT install_hash, min(d) AS first_day, max(d) AS last_day,
               toRelativeMonthNum(first_day) AS m0,
               groupUniqArray(toRelativeMonthNum(d)) AS months
        FROM agg_active_days_v2
        ARRAY JOIN days AS d
        WHERE {app:String} = '' OR app = {app:String}
        GROUP BY install_hash
    )
    ARRAY JOIN [1, 2, 3, 6, 12, 30, 90] AS k
    WHERE if(k < 30, addMonths(toStartOfMonth(first_day), k + 1) <= addDays({until:Date}, 1),
             addDays(first_day, k) <= {until:Date})
      AND cohort BETWEEN toStartOfMonth({since:Date}) AND {until:Date}
    GROUP BY cohort, period, ord
)
ORDER BY cohort, ord;
