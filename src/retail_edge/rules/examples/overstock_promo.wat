;; Discount a slow mover the store has too much of: more than 40 units available and
;; nothing sold in the last hour -> 15 % off, promo "overstock-15". Unknown stock (-1) never matches.
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "overstock-15")

  (func (export "price")
    (param $base i64) (param $cost i64) (param $min_margin_bp i32) (param $stock i32)
    (param $sold_last_hour i32) (param $days_to_expiry i32) (param $flags i32)
    (result i64 i32 i32)
    (if (i32.and (i32.gt_s (local.get $stock) (i32.const 40))
                 (i32.eqz (local.get $sold_last_hour)))
      (then (return (i64.div_u (i64.mul (local.get $base) (i64.const 85)) (i64.const 100))
                    (i32.const 64) (i32.const 12))))
    (local.get $base) (i32.const 0) (i32.const 0)))
