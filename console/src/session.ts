// Who is signed in, and what their roles let them do (the same rule as the server's: admin implies every role,
// every role can read). The console uses it to explain a refusal before the operator tries; the server decides.
export type Role = "admin" | "release-manager" | "approver" | "deployer" | "viewer";
export interface Me {
  subject: string;
  roles: Role[];
}

let me: Me | null = null;
export const setMe = (m: Me | null): void => {
  me = m;
};
export const getMe = (): Me | null => me;

export function can(role: Role): boolean {
  if (!me) return false;
  if (me.roles.includes("admin")) return true;
  if (role === "viewer") return me.roles.length > 0;
  return me.roles.includes(role);
}

/** Why the signed-in token cannot do something that needs `role`, or null when it can. */
export function lacks(role: Role): string | null {
  if (can(role)) return null;
  return `needs the ${role} role; ${me?.subject ?? "this token"} has ${me?.roles.join(", ") || "no roles"}`;
}
