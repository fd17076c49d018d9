;; Mark perishables down as their expiry date nears:
;;   expires today or earlier -> 50 % off, promo "expiry-50"
;;   expires within 2 days    -> 30 % off, promo "expiry-30"
;; The host raises any price below cost * (1 + min_margin) to that floor.
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "expiry-50")
  (data (i32.const 80) "expiry-30")

  ;; price(base, cost, min_margin_bp, stock, sold_last_hour, days_to_expiry, flags) -> (price, promo_ptr, promo_len)
  (func (export "price")
    (param $base i64) (param $cost i64) (param $min_margin_bp i32) (param $stock i32)
    (param $sold_last_hour i32) (param $days_to_expiry i32) (param $flags i32)
    (result i64 i32 i32)
    ;; flags bit 0: the item is perishable and has an expiry date.
    (if (i32.eqz (i32.and (local.get $flags) (i32.const 1)))
      (then (return (local.get $base) (i32.const 0) (i32.const 0))))
    (if (i32.le_s (local.get $days_to_expiry) (i32.const 0))
      (then (return (i64.div_u (local.get $base) (i64.const 2)) (i32.const 64) (i32.const 9))))
    (if (i32.le_s (local.get $days_to_expiry) (i32.const 2))
      (then (return (i64.div_u (i64.mul (local.get $base) (i64.const 70)) (i64.const 100))
                    (i32.const 80) (i32.const 9))))
    (local.get $base) (i32.const 0) (i32.const 0)))
