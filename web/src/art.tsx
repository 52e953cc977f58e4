// A product's picture: the API has no images yet, so each product gets a drawn label in
// colours derived from its name (the same product always looks the same).
function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const PALETTES = [
  ["#1f4d3a", "#e9c46a"],
  ["#264653", "#f4a261"],
  ["#6d2e46", "#f2d0a4"],
  ["#3d405b", "#f2cc8f"],
  ["#2a6f97", "#e0fbfc"],
  ["#7f5539", "#ede0d4"],
  ["#5f0f40", "#fb8b24"],
  ["#344e41", "#dad7cd"],
];

export function ProductArt({ name, size = "card" }: { name: string; size?: "card" | "large" | "thumb" }) {
  const h = hash(name);
  const [bg, fg] = PALETTES[h % PALETTES.length];
  const initials = name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => [...w][0]?.toUpperCase() ?? "")
    .join("");
  const shape = h % 3;
  return (
    <svg className={`art art-${size}`} viewBox="0 0 200 150" role="img" aria-label={name} preserveAspectRatio="xMidYMid slice">
      <rect width="200" height="150" fill={bg} />
      {shape === 0 && <circle cx="150" cy="30" r="60" fill={fg} opacity="0.18" />}
      {shape === 1 && <rect x="-20" y="90" width="260" height="80" transform="rotate(-12 100 120)" fill={fg} opacity="0.16" />}
      {shape === 2 && <path d="M0 150 L80 60 L140 110 L200 40 L200 150 Z" fill={fg} opacity="0.16" />}
      <text x="100" y="88" textAnchor="middle" fontSize="46" fontWeight="700" fill={fg} fontFamily="Georgia, serif">
        {initials}
      </text>
    </svg>
  );
}

/// An average over `count` reviews, or (without `count`) one review's stars.
export function Stars({ average, count }: { average: number; count?: number }) {
  const full = Math.max(0, Math.min(5, Math.round(average)));
  const label =
    count === undefined
      ? `${average} out of 5 stars`
      : count
        ? `Rated ${average.toFixed(1)} out of 5 from ${count} review${count === 1 ? "" : "s"}`
        : "No reviews yet";
  return (
    <span className="stars" role="img" aria-label={label}>
      <span aria-hidden="true">
        {"★".repeat(full)}
        {"☆".repeat(5 - full)}
      </span>
      {count ? <span className="muted" aria-hidden="true">{` (${count})`}</span> : null}
    </span>
  );
}
