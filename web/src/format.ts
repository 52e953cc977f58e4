// Formatting of money, dates and order statuses for people.
export interface Money {
  amountMinor: number;
  currency: string;
}

/// The API's enums (bff/schema.graphql), and its `DateTime`: an RFC 3339 string in UTC.
export type OrderStatus = "PLACED" | "STOCK_RESERVED" | "PAYMENT_AUTHORIZED" | "CONFIRMED" | "SHIPPED" | "DELIVERED" | "CANCELLED";
export type PaymentStatus = "AUTHORIZED" | "DECLINED" | "CAPTURED" | "VOIDED" | "REFUNDED";
export type CartStatus = "OPEN" | "CHECKED_OUT";
export type DateTime = string;

export function money(amountMinor: number, currency: string): string {
  try {
    return new Intl.NumberFormat("en-GB", { style: "currency", currency }).format(amountMinor / 100);
  } catch {
    return `${(amountMinor / 100).toFixed(2)} ${currency}`;
  }
}

export function date(iso: DateTime): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

const STATUS: Record<OrderStatus, string> = {
  PLACED: "Placed",
  STOCK_RESERVED: "Stock reserved",
  PAYMENT_AUTHORIZED: "Payment authorized",
  CONFIRMED: "Confirmed",
  SHIPPED: "Shipped",
  DELIVERED: "Delivered",
  CANCELLED: "Cancelled",
};

export function status(s: string): string {
  return STATUS[s as OrderStatus] ?? s;
}

/// An order's reference for people: the end of its id (ids start with their time, so the
/// ends are what tell orders of one day apart).
export function shortId(id: string): string {
  return id.replace(/-/g, "").slice(-8).toUpperCase();
}

// Parses "12.50" into minor units (1250); null when it is not an amount.
export function parseAmount(text: string): number | null {
  const m = /^\s*(\d{1,15})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] ?? "0").padEnd(2, "0"));
}
