/** The org's members, as widgets that assign mailboxes need them. */

import type { Member, OrgmailError } from "@orgmail/client";
import { useResource } from "./useResource";
import { sampleMembers } from "../preview";

export function memberLabel(member: Member): string {
  const name = member.name ?? member.email;
  return name ? `${name} (${member.userId})` : member.userId;
}

/** Who `userId` is, by name when the members list knows them. */
export function assigneeLabel(userId: string | null, members: Member[] | null): string {
  if (userId === null) return "Unassigned";
  const member = members?.find((m) => m.userId === userId);
  return member ? memberLabel(member) : userId;
}

export interface MembersState {
  /** null while loading, or when the service could not answer. */
  members: Member[] | null;
  error: OrgmailError | null;
  reload: () => void;
}

/** The members a host passed in, else the first page (200) from the service. */
export function useMembers(given: Member[] | undefined, preview: boolean): MembersState {
  const loaded = useResource<Member[]>({
    resources: ["members"],
    preview,
    sample: () => sampleMembers,
    load:
      given === undefined
        ? async (client, signal) => (await client.mail.members.list({ limit: 200 }, { signal })).members
        : null,
    key: "members",
  });
  if (given !== undefined) return { members: given, error: null, reload: loaded.reload };
  return {
    members: loaded.status === "ready" ? loaded.data : null,
    error: loaded.status === "error" ? loaded.error : null,
    reload: loaded.reload,
  };
}
